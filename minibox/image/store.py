"""The content-addressed image store under ``<root>/image`` (docker's overlay2 shape).

Layout (every directory 0700, every file written atomically)::

    image/repositories.json        tag index {"Repositories": {"busybox": {"busybox:latest": id}}}
    image/configs/<hex>            image config bytes; the image id is sha256 of them
    image/meta/<hex>.json          per image: layer list (diff_id, blob digest, media type), digests
    image/blobs/sha256/<hex>       blobs as pulled/loaded (compressed layers, manifests)
    image/layers/<hex>/diff/       a layer unpacked once per diff_id, shared by every image
    image/layers/<hex>/layer.json  {"diff_id", "size", "link"}
    image/l/<LINK>                 -> ../layers/<hex>/diff: short names keep overlay's
                                   lowerdir option under the page size
    image/tmp/                     unpacks in progress; renamed into layers/ only when complete
    image/userns/<hex>/<key>/      --userns-remap copies of a layer with shifted owners (kernels
                                   without idmapped mounts); removed with the layer
    image/lock                     flock held by writers while they commit

A layer becomes visible by one ``rename`` after it is unpacked and its diff_id
verified, so an interrupted pull or load leaves only a temp dir that the next
writer removes (its owner pid is in the name).
"""

import os
import time

from minibox.errors import Conflict, MiniboxError, NotFound, UsageError
from minibox.image import fsutil

_LINK_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_LINK_LEN = 10
_HEX = frozenset("0123456789abcdef")


def _hex(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not set(hexpart) <= _HEX:
        raise MiniboxError(f"invalid digest {digest!r}")
    return hexpart


def now_rfc3339() -> str:
    """UTC now (or SOURCE_DATE_EPOCH, for reproducible image ids) in RFC 3339."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = int(epoch) if epoch and epoch.isdigit() else time.time()
    frac = "" if epoch else f".{int((t % 1) * 1e9):09d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + frac + "Z"


class Image:
    """One image: its id, OCI config, tags, and ordered layers (bottom first)."""

    def __init__(self, store: "ImageStore", image_id: str, config: dict, meta: dict, repo_tags, repo_digests):
        self.store = store
        self.id = image_id
        self.config = config
        self.meta = meta
        self.repo_tags = repo_tags
        self.repo_digests = repo_digests

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids") or [])

    @property
    def created(self) -> str:
        return self.config.get("created") or ""

    @property
    def size(self) -> int:
        """Sum of the unpacked layer sizes (docker's SIZE column)."""
        return sum(self.store.layer_info(d).get("size", 0) for d in self.diff_ids)

    def layer_dirs(self) -> list[str]:
        """Absolute ``diff`` dirs, bottom layer first."""
        return [self.store.layer_dir(d) for d in self.diff_ids]

    def __repr__(self) -> str:
        return f"Image({self.id[:19]}, tags={self.repo_tags})"


class ImageStore:
    """Images, layers and tags under ``<root>/image``; safe for concurrent writers."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self.dir = os.path.join(self.root, "image")
        self.index_path = os.path.join(self.dir, "repositories.json")

    # --- paths and setup ---------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def ensure(self) -> None:
        """Create the store's directories (0700) before the first write."""
        if os.path.isdir(self.path("tmp")):
            return
        for sub in ("configs", "meta", "blobs/sha256", "layers", "l", "tmp"):
            fsutil.makedirs(self.path(sub))

    def lock(self) -> fsutil.FileLock:
        return fsutil.FileLock(self.path("lock"))

    def gc_guard(self) -> fsutil.FileLock:
        """Held (shared) by pull/load/import while their new layers are not yet
        referenced by an image, so a concurrent rmi/prune never collects them."""
        return fsutil.FileLock(self.path("gc.lock"), shared=True)

    def layer_dir(self, diff_id: str) -> str:
        return self.path("layers", _hex(diff_id), "diff")

    def layer_info(self, diff_id: str) -> dict:
        return fsutil.read_json(self.path("layers", _hex(diff_id), "layer.json"), {}) or {}

    def has_layer(self, diff_id: str) -> bool:
        return os.path.isfile(self.path("layers", _hex(diff_id), "layer.json"))

    def blob_path(self, digest: str) -> str:
        return self.path("blobs", "sha256", _hex(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.isfile(self.blob_path(digest))

    # --- temp dirs ----------------------------------------------------------
    def mkdtemp(self, kind: str) -> str:
        """A private dir under image/tmp named with our pid (stale ones are reaped)."""
        self.ensure()
        path = self.path("tmp", f"{kind}-{os.getpid()}-{os.urandom(6).hex()}")
        os.mkdir(path, 0o700)
        return path

    def reap_tmp(self) -> None:
        """Remove temp dirs whose owner process is gone (an interrupted pull/load)."""
        import shutil

        try:
            names = os.listdir(self.path("tmp"))
        except FileNotFoundError:
            return
        for name in names:
            try:
                pid = int(name.split("-")[1])
            except (IndexError, ValueError):
                pid = 0
            if pid == os.getpid() or (pid and fsutil.pid_alive(pid)):
                continue
            path = self.path("tmp", name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    # --- tag index ------------------------------------------------------------
    def _index(self) -> dict:
        data = fsutil.read_json(self.index_path, None) or {}
        return data.get("Repositories") or {}

    def _write_index(self, repos: dict) -> None:
        repos = {k: v for k, v in repos.items() if v}
        fsutil.atomic_write_json(self.index_path, {"Repositories": repos})

    def _refs_by_id(self) -> dict:
        out: dict[str, list[str]] = {}
        for refs in self._index().values():
            for key, image_id in refs.items():
                out.setdefault(image_id, []).append(key)
        return out

    # --- reading images ---------------------------------------------------------
    def image_ids(self) -> list[str]:
        try:
            return ["sha256:" + n for n in os.listdir(self.path("configs")) if len(n) == 64]
        except FileNotFoundError:
            return []

    def get(self, image_id: str, refs_by_id: dict | None = None) -> Image:
        """The image with id ``sha256:<hex>`` (NotFound if absent)."""
        import json

        h = _hex(image_id)
        try:
            with open(self.path("configs", h), "rb") as f:
                config = json.loads(f.read())
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None
        meta = fsutil.read_json(self.path("meta", h + ".json"), {}) or {}
        refs = (refs_by_id if refs_by_id is not None else self._refs_by_id()).get(image_id, [])
        tags = sorted(r for r in refs if "@" not in r)
        digests = sorted(r for r in refs if "@" in r)
        for d in meta.get("repo_digests", []):
            if d not in digests:
                digests.append(d)
        return Image(self, image_id, config, meta, tags, digests)

    def images(self) -> list[Image]:
        """Every image, newest first."""
        refs = self._refs_by_id()
        out = [self.get(i, refs) for i in self.image_ids()]
        out.sort(key=lambda im: im.created, reverse=True)
        return out

    def resolve(self, name: str) -> Image:
        """An image by reference (``busybox`` → ``busybox:latest``), full id or id prefix.

        NotFound("No such image: busybox:latest") when absent, as docker says it.
        """
        from minibox.image import reference

        if name.startswith("sha256:"):
            return self._by_id_prefix(name[7:], name)
        ref = None
        try:
            ref = reference.parse(name)
        except UsageError:
            if not set(name) <= _HEX:
                raise
        if ref is not None:
            image_id = self._index().get(ref.familiar_name, {}).get(ref.familiar())
            if image_id is not None:
                return self.get(image_id)
        if set(name) <= _HEX and len(name) >= 4:
            try:
                return self._by_id_prefix(name, name)
            except NotFound:
                pass
        raise NotFound(f"No such image: {ref.familiar() if ref else name}")

    def _by_id_prefix(self, prefix: str, shown: str) -> Image:
        hits = [i for i in self.image_ids() if i[7:].startswith(prefix)] if prefix else []
        if not hits:
            raise NotFound(f"No such image: {shown}")
        if len(hits) > 1:
            raise Conflict(f"image id prefix {shown!r} is ambiguous ({len(hits)} images)")
        return self.get(hits[0])

    def lower_links(self, img: Image) -> list[str]:
        """``l/<LINK>`` names relative to the store dir, top layer first (overlay order)."""
        out = []
        for diff_id in reversed(img.diff_ids):
            info = self.layer_info(diff_id)
            if not info.get("link"):
                raise MiniboxError(f"image {img.short_id}: layer {diff_id} is missing from the store")
            out.append("l/" + info["link"])
        return out

    # --- writing layers -----------------------------------------------------------
    def add_layer(self, fileobj, expected_diff_id: str | None = None, label: str = "layer", limits=None) -> dict:
        """Unpack a layer tar stream into the store (no blob kept); returns layer.json."""
        return self.add_layer_blob(fileobj, diff_id=expected_diff_id, label=label, limits=limits, keep_blob=False)

    def add_layer_blob(self, fileobj, *, diff_id: str | None = None, blob_digest: str | None = None,
                       blob_size: int | None = None, label: str = "layer", limits=None,
                       keep_blob: bool = True) -> dict:
        """Unpack a (compressed) layer blob while keeping a copy of the blob.

        Both digests are checked before anything becomes visible: the blob's
        (``blob_digest``, ``blob_size``, as a registry descriptor states them)
        and the uncompressed stream's (``diff_id``, from the image config).
        The layer dir is renamed into place only then, under the lock; a layer
        already present is reused. Returns layer.json plus ``blob`` and
        ``media_type``.
        """
        import hashlib
        import shutil

        from minibox.image import unpack

        if diff_id and self.has_layer(diff_id) and (not keep_blob or (blob_digest and self.has_blob(blob_digest))):
            return dict(self.layer_info(diff_id), blob=blob_digest)
        self.ensure()
        tmp = self.mkdtemp("layer")
        try:
            blob_tmp = os.path.join(self.path("tmp"), os.path.basename(tmp) + ".blob")
            with open(blob_tmp, "wb") if keep_blob else open(os.devnull, "wb") as out:
                tee = _Tee(fileobj, out, hashlib.sha256())
                if diff_id and self.has_layer(diff_id):
                    stats = None  # only the blob is missing: verify and keep it
                else:
                    diff = os.path.join(tmp, "diff")
                    os.mkdir(diff, 0o755)
                    stats = unpack.unpack(tee, diff, limits=limits or unpack.Limits(), label=label)
                _drain(tee)
                if keep_blob:
                    out.flush()
                    os.fsync(out.fileno())
            digest = "sha256:" + tee.hash.hexdigest()
            if blob_digest and digest != blob_digest:
                raise unpack.LayerError(f"{label}: digest mismatch: got {digest}, expected {blob_digest}")
            if blob_size is not None and tee.count != blob_size:
                raise unpack.LayerError(f"{label}: size mismatch: got {tee.count} bytes, expected {blob_size}")
            if stats is not None and diff_id and stats.diff_id != diff_id:
                raise unpack.LayerError(f"{label}: diff_id mismatch: content is {stats.diff_id}, expected {diff_id}")
            media = None
            if keep_blob:
                media = layer_media_type(blob_tmp)
                self.commit_blob(blob_tmp, digest)
            if stats is None:
                info = self.layer_info(diff_id)
            else:
                info = self._commit_layer(tmp, stats.diff_id, stats.size, stats.tar_size)
            return dict(info, blob=digest if keep_blob else None, media_type=media)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if keep_blob:
                try:
                    os.unlink(blob_tmp)
                except FileNotFoundError:
                    pass

    def _commit_layer(self, tmp: str, diff_id: str, size: int, tar_size: int = 0) -> dict:
        h = _hex(diff_id)
        final = self.path("layers", h)
        with self.lock():
            if self.has_layer(diff_id):
                return self.layer_info(diff_id)
            link = "".join(_LINK_ALPHABET[b % 32] for b in os.urandom(_LINK_LEN))
            info = {"diff_id": diff_id, "size": size, "tar_size": tar_size, "link": link}
            fsutil.atomic_write_json(os.path.join(tmp, "layer.json"), info)
            # The link first: dangling until the rename, never pointing at half a layer.
            os.symlink(f"../layers/{h}/diff", self.path("l", link))
            os.rename(tmp, final)
            fsutil.fsync_dir(self.path("layers"))
        return info

    # --- writing blobs -------------------------------------------------------------
    def commit_blob(self, tmp_path: str, digest: str) -> str:
        """Move a verified temp file into blobs/ (keeps an existing copy)."""
        dest = self.blob_path(digest)
        if os.path.exists(dest):
            os.unlink(tmp_path)
        else:
            os.chmod(tmp_path, 0o600)
            os.replace(tmp_path, dest)
        return dest

    # --- writing images ------------------------------------------------------------
    def add_image(self, config_bytes: bytes, layers: list[dict], tags=(), repo_digests=()) -> Image:
        """Record an image whose layers are all in the store; tag it; return it.

        ``layers`` (bottom first) hold ``diff_id`` and optionally ``blob`` and
        ``media_type`` (kept so ``save`` can write the original blobs).
        """
        import hashlib
        import json

        config = json.loads(config_bytes)
        diff_ids = config.get("rootfs", {}).get("diff_ids") or []
        if [l["diff_id"] for l in layers] != diff_ids:
            raise MiniboxError("image config diff_ids do not match its layers")
        for d in diff_ids:
            if not self.has_layer(d):
                raise MiniboxError(f"layer {d} is missing from the store")
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        h = _hex(image_id)
        with self.lock():
            old = fsutil.read_json(self.path("meta", h + ".json"), {}) or {}
            digests = list(old.get("repo_digests", []))
            for d in repo_digests:
                if d not in digests:
                    digests.append(d)
            meta = {"layers": layers, "repo_digests": digests, "added": old.get("added") or now_rfc3339()}
            fsutil.atomic_write(self.path("configs", h), config_bytes)
            fsutil.atomic_write_json(self.path("meta", h + ".json"), meta)
            if tags:
                self._set_tags(image_id, tags)
        return self.get(image_id)

    def _set_tags(self, image_id: str, tags) -> None:
        from minibox.image import reference

        repos = self._index()
        for t in tags:
            ref = reference.parse(t) if isinstance(t, str) else t
            repos.setdefault(ref.familiar_name, {})[ref.familiar()] = image_id
        self._write_index(repos)

    def tag(self, image: Image, ref) -> None:
        """Point ``ref`` (text or Reference) at ``image``."""
        with self.lock():
            self._set_tags(image.id, [ref])

    def untag(self, ref) -> str | None:
        """Remove one tag; returns the image id it pointed to."""
        from minibox.image import reference

        ref = reference.parse(ref) if isinstance(ref, str) else ref
        with self.lock():
            repos = self._index()
            image_id = repos.get(ref.familiar_name, {}).pop(ref.familiar(), None)
            if image_id is not None:
                self._write_index(repos)
        return image_id

    # --- import ----------------------------------------------------------------------
    def import_tarball(self, path: str, ref: str | None = None, changes=(), message: str | None = None) -> Image:
        """``docker import``: a rootfs tarball (plain/gzip/zstd) becomes a one-layer image.

        Like docker, the config's Cmd is empty unless a ``CMD`` change is given.
        ``path`` may be ``-`` for stdin. The original tar is kept as a blob.
        """
        import sys

        from minibox.image import changes as changes_mod
        from minibox.image import reference

        target = reference.parse(ref) if ref else None
        container_config = changes_mod.apply(
            {"Env": None, "Cmd": None, "Entrypoint": None, "WorkingDir": "", "User": "", "Labels": None},
            changes,
        )
        self.ensure()
        self.reap_tmp()
        try:
            src = _nullctx(sys.stdin.buffer) if path == "-" else open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise MiniboxError(f"import {path}: {exc.strerror}") from None
        with src, self.gc_guard():
            info = self.add_layer_blob(src, label=f"import {path}")
            return self._import_image(info, path, target, container_config, message)

    def _import_image(self, info, path, target, container_config, message) -> Image:
        import json

        from minibox.image import platform

        created = now_rfc3339()
        # docker's wording: the CLI streams the file, so the daemon always sees "-";
        # it also keeps the image id independent of where the tarball lay.
        comment = message or "Imported from -"
        plat = platform.host()
        config = {
            "architecture": plat["architecture"],
            "os": plat["os"],
            "created": created,
            "comment": comment,
            "config": container_config,
            "rootfs": {"type": "layers", "diff_ids": [info["diff_id"]]},
            "history": [{"created": created, "comment": comment}],
        }
        if plat["variant"]:
            config["variant"] = plat["variant"]
        raw = json.dumps(config, separators=(",", ":")).encode()
        layer = {"diff_id": info["diff_id"], "blob": info["blob"], "media_type": info["media_type"]}
        return self.add_image(raw, [layer], tags=[target] if target else ())

    # --- inspect, removal, garbage collection ---------------------------------------
    def list_images(self) -> list[Image]:
        """Alias of images() (the name ``info`` calls)."""
        return self.images()

    def inspect(self, img: Image) -> dict:
        """``docker image inspect`` view of an image."""
        cfg = img.config
        lowers = [self.layer_dir(d) for d in reversed(img.diff_ids)]
        return {
            "Id": img.id,
            "RepoTags": img.repo_tags,
            "RepoDigests": img.repo_digests,
            "Parent": "",
            "Comment": cfg.get("comment", ""),
            "Created": cfg.get("created", ""),
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": cfg.get("config") or {},
            "Architecture": cfg.get("architecture", ""),
            "Os": cfg.get("os", ""),
            "Size": img.size,
            "GraphDriver": {"Name": "overlay2", "Data": {
                "LowerDir": ":".join(lowers[1:]) or None,
                "UpperDir": lowers[0] if lowers else None,
                "MergedDir": None, "WorkDir": None}},
            "RootFS": {"Type": "layers", "Layers": img.diff_ids},
            "Metadata": {"LastTagTime": img.meta.get("added", "")},
            **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        }

    def containers_using(self, image_id: str) -> list[str]:
        """Ids of the containers whose record (<root>/containers/*/container.json) uses the image."""
        out = []
        base = os.path.join(self.root, "containers")
        try:
            names = os.listdir(base)
        except FileNotFoundError:
            return out
        for cid in names:
            rec = fsutil.read_json(os.path.join(base, cid, "container.json"), None) if len(cid) == 64 else None
            if isinstance(rec, dict) and rec.get("image_id") == image_id:
                out.append(cid)
        return out

    def remove(self, name: str, force: bool = False) -> list[str]:
        """``rmi``: untag and/or delete; returns docker's ``Untagged:``/``Deleted:`` lines.

        An image used by a container is never deleted: without ``force`` it is
        a Conflict; with it, only its tags go (docker's behaviour for stopped
        containers keeps the layers the container needs, and so do we).
        """
        from minibox.image import reference

        img = self.resolve(name)
        lines = []
        by_tag = not (name.startswith("sha256:") or (set(name) <= _HEX and img.id[7:].startswith(name)))
        users = self.containers_using(img.id)
        if by_tag:
            ref = reference.parse(name)
            if users and not force and len(img.repo_tags) <= 1:
                raise Conflict(f'conflict: unable to remove repository reference "{name}" (must force) - '
                               f"container {users[0][:12]} is using its referenced image {img.short_id}")
            if len(img.repo_tags) > 1 or users:
                self.untag(ref)
                return [f"Untagged: {ref.familiar()}"]
        else:
            if users and not force:
                raise Conflict(f"conflict: unable to delete {img.short_id} (must be forced) - image is being "
                               f"used by container {users[0][:12]}")
            if len(img.repo_tags) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {img.short_id} (must be forced) - image is "
                               "referenced in multiple repositories")
        for t in img.repo_tags + [d for d in img.repo_digests if d in self._all_refs()]:
            self.untag(t)
            lines.append(f"Untagged: {t}")
        if users:
            return lines
        lines += self._delete_image(img)
        return lines

    def _all_refs(self) -> set:
        return {k for refs in self._index().values() for k in refs}

    def _delete_image(self, img: Image) -> list[str]:
        h = _hex(img.id)
        with self.lock():
            for p in (self.path("configs", h), self.path("meta", h + ".json")):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
        return [f"Deleted: {img.id}"] + self.gc()

    def gc(self) -> list[str]:
        """Remove layers and blobs no image references (skipped while a pull/load runs).

        A layer dir leaves by rename into tmp/ (atomic), then its l/ link and
        its files go; a container using it always has its image recorded.
        """
        import shutil

        lines = []
        guard = fsutil.FileLock(self.path("gc.lock"), shared=False, blocking=False)
        with guard:
            if not guard.acquired:
                return lines
            with self.lock():
                imgs = [self.get(i, {}) for i in self.image_ids()]
                used_layers = {d for im in imgs for d in im.diff_ids}
                used_blobs = {l.get("blob") for im in imgs for l in im.meta.get("layers", [])}
                for h in _listdir(self.path("layers")):
                    diff_id = "sha256:" + h
                    if len(h) != 64 or diff_id in used_layers:
                        continue
                    info = self.layer_info(diff_id)
                    trash = self.path("tmp", f"gc-{os.getpid()}-{h[:12]}-{os.urandom(3).hex()}")
                    os.rename(self.path("layers", h), trash)
                    if info.get("link"):
                        try:
                            os.unlink(self.path("l", info["link"]))
                        except FileNotFoundError:
                            pass
                    shutil.rmtree(trash, ignore_errors=True)
                    # Its --userns-remap shifted copies (runtime/userns.shifted_layer).
                    shifted = self.path("userns", h)
                    if os.path.isdir(shifted):
                        trash = self.path("tmp", f"gc-{os.getpid()}-userns-{h[:12]}-{os.urandom(3).hex()}")
                        os.rename(shifted, trash)
                        shutil.rmtree(trash, ignore_errors=True)
                    lines.append(f"Deleted: {diff_id}")
                for h in _listdir(self.path("blobs", "sha256")):
                    if "sha256:" + h not in used_blobs:
                        os.unlink(self.path("blobs", "sha256", h))
                # Links whose layer is gone (a crash between link and rename).
                for link in _listdir(self.path("l")):
                    if not os.path.exists(self.path("l", link)):
                        os.unlink(self.path("l", link))
        return lines

    def prune(self, all_images: bool = False) -> tuple[list[str], int]:
        """``image prune``: dangling (untagged) images, or with ``all_images`` every
        image no container uses. Returns (docker's lines, bytes reclaimed)."""
        before = self._bytes()
        lines = []
        for img in self.images():
            if img.repo_tags and not all_images:
                continue
            if self.containers_using(img.id):
                continue
            for t in img.repo_tags + [d for d in img.repo_digests if d in self._all_refs()]:
                self.untag(t)
                lines.append(f"untagged: {t}")
            h = _hex(img.id)
            with self.lock():
                for p in (self.path("configs", h), self.path("meta", h + ".json")):
                    try:
                        os.unlink(p)
                    except FileNotFoundError:
                        pass
            lines.append(f"deleted: {img.id}")
        lines += [line.replace("Deleted:", "deleted:") for line in self.gc()]
        return lines, max(0, before - self._bytes())

    def _bytes(self) -> int:
        total = 0
        for top in (self.path("layers"), self.path("blobs")):
            for dirpath, _dirs, files in os.walk(top):
                for n in files:
                    try:
                        total += os.lstat(os.path.join(dirpath, n)).st_size
                    except OSError:
                        pass
        return total

    # --- accounting -------------------------------------------------------------------
    def disk_usage(self) -> dict:
        """Sizes for ``system df``: images, their shared and unique layer bytes, blobs.

        ``{"images": n, "layers": n, "layers_size": bytes (each layer once),
        "images_size_sum": bytes (as if nothing were shared), "shared_size":
        bytes used by 2+ images, "blobs_size": bytes, "per_image": {id: {"size",
        "shared_size", "unique_size"}}}``
        """
        imgs = self.images()
        users: dict[str, int] = {}
        for im in imgs:
            for d in set(im.diff_ids):
                users[d] = users.get(d, 0) + 1
        sizes = {d: self.layer_info(d).get("size", 0) for d in users}
        per = {}
        for im in imgs:
            ds = set(im.diff_ids)
            shared = sum(sizes[d] for d in ds if users[d] > 1)
            total = sum(sizes[d] for d in ds)
            per[im.id] = {"size": total, "shared_size": shared, "unique_size": total - shared}
        blobs = 0
        try:
            for n in os.listdir(self.path("blobs", "sha256")):
                blobs += os.lstat(self.path("blobs", "sha256", n)).st_size
        except FileNotFoundError:
            pass
        return {
            "images": len(imgs),
            "layers": len(users),
            "layers_size": sum(sizes.values()),
            "images_size_sum": sum(p["size"] for p in per.values()),
            "shared_size": sum(sizes[d] for d in users if users[d] > 1),
            "blobs_size": blobs,
            "per_image": per,
        }


def layer_media_type(path: str) -> str:
    """OCI layer media type of a blob file, from its magic bytes."""
    from minibox.image.unpack import GZIP_MAGIC, ZSTD_MAGIC

    with open(path, "rb") as f:
        head = f.read(4)
    base = "application/vnd.oci.image.layer.v1.tar"
    if head.startswith(GZIP_MAGIC):
        return base + "+gzip"
    if head.startswith(ZSTD_MAGIC):
        return base + "+zstd"
    return base


class _Tee:
    """Passes reads through while copying and hashing them (keep the original blob)."""

    def __init__(self, src, out, h):
        self.src, self.out, self.hash = src, out, h
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.src.read(size)
        if data:
            self.out.write(data)
            self.hash.update(data)
            self.count += len(data)
        return data


class _nullctx:
    def __init__(self, obj):
        self.obj = obj

    def __enter__(self):
        return self.obj

    def read(self, size: int = -1) -> bytes:
        return self.obj.read(size)

    def __exit__(self, *exc):
        return False


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _drain(fileobj) -> None:
    while fileobj.read(1 << 20):
        pass
