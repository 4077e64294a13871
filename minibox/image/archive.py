"""``load`` and ``save``: docker save archives and OCI image layouts.

Archives are read in place with ``tarfile``'s random access (headers and
member data only; nothing is extracted to the filesystem), so a hostile
archive can only feed bytes to the layer extractor, which treats them as
it treats any layer. A compressed archive or stdin is spooled to a temp
file first. Every config, manifest and layer is verified against the digest
that names it.

``save`` writes one archive that both formats read: docker's
``manifest.json`` (what ``docker load`` reads) and an OCI layout
(``oci-layout``, ``index.json``, ``blobs/sha256``), with uncompressed layers
whose digest is their diff_id, as docker 25+ does.
"""

import hashlib
import io
import json
import os
import sys

from minibox.errors import MiniboxError, UsageError
from minibox.image import reference

MAX_JSON = 8 << 20
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ANN_REF = "org.opencontainers.image.ref.name"
ANN_CONTAINERD = "io.containerd.image.name"


class _TarSource:
    """Members of a tar archive by normalised name, read without extracting."""

    def __init__(self, path: str, label: str):
        import tarfile

        self.label = label
        try:
            self.tf = tarfile.open(path, mode="r:")  # noqa: SIM115 - closed by close()
            self.members = {}
            for m in self.tf.getmembers():
                name = os.path.normpath(m.name.lstrip("/"))
                if not name.startswith(".."):
                    self.members[name] = m
        except (tarfile.TarError, OSError) as exc:
            raise MiniboxError(f"{label}: not a valid tar archive: {exc}") from None

    def exists(self, name: str) -> bool:
        return os.path.normpath(name) in self.members

    def open(self, name: str):
        import tarfile

        m = self.members.get(os.path.normpath(name.lstrip("/")))
        if m is None:
            raise MiniboxError(f"{self.label}: {name} is missing from the archive")
        try:
            f = self.tf.extractfile(m)
        except (KeyError, RecursionError, tarfile.TarError):
            f = None
        if f is None:
            raise MiniboxError(f"{self.label}: {name} is not a regular file in the archive")
        return f

    def close(self) -> None:
        self.tf.close()


class _DirSource:
    """An OCI layout directory."""

    def __init__(self, path: str, label: str):
        self.path = path
        self.label = label

    def exists(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self.path, name))

    def open(self, name: str):
        parts = [p for p in os.path.normpath(name).split("/") if p]
        if ".." in parts:
            raise MiniboxError(f"{self.label}: {name}: path escapes the layout")
        try:
            return open(os.path.join(self.path, *parts), "rb")
        except OSError as exc:
            raise MiniboxError(f"{self.label}: {name}: {exc.strerror}") from None

    def close(self) -> None:
        pass


def _read_json(src, name: str, label: str, digest: str | None = None):
    with src.open(name) as f:
        data = f.read(MAX_JSON + 1)
    if len(data) > MAX_JSON:
        raise MiniboxError(f"{label}: {name} exceeds {MAX_JSON} bytes")
    if digest:
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest:
            raise MiniboxError(f"{label}: {name}: digest mismatch: got {got}, expected {digest}")
    try:
        return data, json.loads(data)
    except ValueError:
        raise MiniboxError(f"{label}: {name} is not valid JSON") from None


def _blob_name(digest: str, label: str) -> str:
    if not reference.is_digest(digest):
        raise MiniboxError(f"{label}: invalid digest {digest!r}")
    return f"blobs/sha256/{digest[7:]}"


def _spool(store, path: str, label: str) -> tuple[str, bool]:
    """A seekable, uncompressed tar file for ``path`` (stdin and gzip/zstd are copied)."""
    from minibox.image import unpack

    if path != "-":
        with open(path, "rb") as f:
            head = f.read(4)
        if not head.startswith((unpack.GZIP_MAGIC, unpack.ZSTD_MAGIC)):
            return path, False
    tmp = os.path.join(store.mkdtemp("load"), "archive.tar")
    src = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        reader, closer = unpack.decompressed(src, label)
        with open(tmp, "wb") as out:
            while chunk := reader.read(1 << 20):
                out.write(chunk)
        if closer:
            closer()
    finally:
        if path != "-":
            src.close()
    return tmp, True


def load(store, path: str, quiet: bool = False, out=None, platform: str | None = None) -> list:
    """Load every image of a docker save archive or OCI layout (dir or tar)."""
    import shutil

    out = out or sys.stdout
    label = f"load {path}"
    store.ensure()
    store.reap_tmp()
    spooled = False
    if path != "-" and os.path.isdir(path):
        src = _DirSource(path, label)
    else:
        try:
            tar_path, spooled = _spool(store, path, label)
        except OSError as exc:
            raise MiniboxError(f"{label}: {exc.strerror}") from None
        src = _TarSource(tar_path, label)
    try:
        with store.gc_guard():
            if src.exists("manifest.json"):
                loaded = _load_docker(store, src, label)
            elif src.exists("index.json"):
                loaded = _load_oci(store, src, label, platform)
            else:
                raise MiniboxError(f"{label}: neither a docker save archive (manifest.json) "
                                   "nor an OCI layout (index.json)")
    finally:
        src.close()
        if spooled:
            shutil.rmtree(os.path.dirname(tar_path), ignore_errors=True)
    merged: dict = {}
    for img, tags in loaded:
        prev = merged.setdefault(img.id, [img, []])
        prev[0] = img
        prev[1].extend(t for t in tags if t not in prev[1])
    loaded = [(store.get(i), tags) for i, (_, tags) in merged.items()]
    if not quiet:
        for img, tags in loaded:
            for t in tags:
                out.write(f"Loaded image: {t}\n")
            if not tags:
                out.write(f"Loaded image ID: {img.id}\n")
    return [img for img, _ in loaded]


def _load_layers(store, src, names: list[str], diff_ids: list[str], label: str, digests=None) -> list[dict]:
    if len(names) != len(diff_ids):
        raise MiniboxError(f"{label}: {len(names)} layers but the config lists {len(diff_ids)} diff_ids")
    layers = []
    for i, (name, diff_id) in enumerate(zip(names, diff_ids)):
        digest = digests[i] if digests else None
        with src.open(name) as f:
            info = store.add_layer_blob(f, diff_id=diff_id, blob_digest=digest, label=f"{label}: layer {name}")
        layers.append({"diff_id": diff_id, "blob": info.get("blob"), "media_type": info.get("media_type")})
    return layers


def _load_docker(store, src, label: str) -> list:
    _, manifest = _read_json(src, "manifest.json", label)
    if not isinstance(manifest, list):
        raise MiniboxError(f"{label}: manifest.json is not a list")
    loaded = []
    for entry in manifest:
        config_bytes, config = _read_json(src, entry.get("Config", ""), label)
        if entry.get("Config", "").startswith("blobs/sha256/"):
            got = hashlib.sha256(config_bytes).hexdigest()
            if os.path.basename(entry["Config"]) != got:
                raise MiniboxError(f"{label}: {entry['Config']}: digest mismatch")
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        layers = _load_layers(store, src, entry.get("Layers") or [], diff_ids, label)
        tags = []
        for t in entry.get("RepoTags") or []:
            ref = reference.parse(t)
            tags.append(ref)
        img = store.add_image(config_bytes, layers, tags=tags)
        loaded.append((img, [r.familiar() for r in tags]))
    return loaded


def _load_oci(store, src, label: str, platform: str | None) -> list:
    from minibox.image import platform as platforms

    want = platforms.parse(platform)
    _, index = _read_json(src, "index.json", label)
    loaded = []
    for desc in index.get("manifests") or []:
        ann = desc.get("annotations") or {}
        media = desc.get("mediaType")
        if media in (OCI_INDEX, DOCKER_LIST):
            _, nested = _read_json(src, _blob_name(desc["digest"], label), label, desc["digest"])
            from minibox.image.pull import select_platform

            desc = select_platform(nested, want, label)
            media = desc.get("mediaType")
        if media not in (OCI_MANIFEST, DOCKER_MANIFEST):
            raise MiniboxError(f"{label}: unsupported manifest media type {media!r}")
        _, manifest = _read_json(src, _blob_name(desc["digest"], label), label, desc["digest"])
        cdesc = manifest.get("config") or {}
        config_bytes, config = _read_json(src, _blob_name(cdesc.get("digest", ""), label), label, cdesc.get("digest"))
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        ldescs = manifest.get("layers") or []
        layers = _load_layers(store, src, [_blob_name(d.get("digest", ""), label) for d in ldescs], diff_ids,
                              label, [d["digest"] for d in ldescs])
        for layer, d in zip(layers, ldescs):
            layer["media_type"] = d.get("mediaType") or layer["media_type"]
        tags = []
        name = ann.get(ANN_CONTAINERD) or ann.get(ANN_REF)
        # A bare ref.name ("latest") is only a tag, not an image name: leave the image untagged.
        if name and ("/" in name or ":" in name):
            try:
                tags.append(reference.parse(name))
            except UsageError:
                pass
        img = store.add_image(config_bytes, layers, tags=tags)
        loaded.append((img, [r.familiar() for r in tags]))
    return loaded


# --- save ------------------------------------------------------------------------------
def save(store, names: list[str], output: str | None) -> None:
    """Write ``names`` (tags or ids) to ``output`` (or stdout) as a docker/OCI archive."""
    if output is None and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    picked = []
    for name in names:
        img = store.resolve(name)
        tags = []
        if not (set(name) <= set("0123456789abcdef") or name.startswith("sha256:")):
            ref = reference.parse(name)
            if ref.tag:
                tags = [ref.familiar()]
        for prev_img, prev_tags in picked:
            if prev_img.id == img.id:
                prev_tags.extend(t for t in tags if t not in prev_tags)
                break
        else:
            picked.append((img, tags))
    if output is None:
        _write_archive(store, picked, sys.stdout.buffer)
        return
    tmp = f"{output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            _write_archive(store, picked, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, output)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class _Verify:
    """Hashes what tarfile copies, to check a stored layer still has its diff_id."""

    def __init__(self, raw):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hash.update(data)
        self.count += len(data)
        return data


def _write_archive(store, picked, fileobj) -> None:
    import tarfile

    from minibox.image import unpack

    def add_bytes(tf, name, data):
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
        tf.addfile(ti, io.BytesIO(data))

    def add_dir(tf, name):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
        tf.addfile(ti)

    written = set()
    docker_manifest, oci_index, repositories = [], [], {}
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        add_dir(tf, "blobs")
        add_dir(tf, "blobs/sha256")
        for img, tags in picked:
            layer_names, layer_descs = [], []
            for layer in img.meta.get("layers") or [{"diff_id": d} for d in img.diff_ids]:
                diff_id, blob = layer["diff_id"], layer.get("blob")
                name = f"blobs/sha256/{diff_id[7:]}"
                if diff_id not in written:
                    if not blob or not store.has_blob(blob):
                        raise MiniboxError(f"save {img.short_id}: layer {diff_id} has no stored blob")
                    size = store.layer_info(diff_id).get("tar_size") or _tar_size(store.blob_path(blob))
                    with open(store.blob_path(blob), "rb") as f:
                        raw, closer = unpack.decompressed(f, f"save: layer {diff_id}")
                        v = _Verify(raw)
                        ti = tarfile.TarInfo(name)
                        ti.size, ti.mode, ti.mtime = size, 0o644, 0
                        tf.addfile(ti, v)
                        if v.read(1):
                            raise MiniboxError(f"save {img.short_id}: layer {diff_id} is longer than recorded")
                        if closer:
                            closer()
                    if "sha256:" + v.hash.hexdigest() != diff_id:
                        raise MiniboxError(f"save {img.short_id}: stored layer {diff_id} is corrupt")
                    written.add(diff_id)
                layer_names.append(name)
                size = store.layer_info(diff_id).get("tar_size") or 0
                layer_descs.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": size})
            with open(store.path("configs", img.id[7:]), "rb") as f:
                config_bytes = f.read()
            config_name = f"blobs/sha256/{img.id[7:]}"
            if img.id not in written:
                add_bytes(tf, config_name, config_bytes)
                written.add(img.id)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": img.id, "size": len(config_bytes)},
                "layers": layer_descs,
            }).encode()
            mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            if mdigest not in written:
                add_bytes(tf, f"blobs/sha256/{mdigest[7:]}", manifest)
                written.add(mdigest)
            docker_manifest.append({"Config": config_name, "RepoTags": tags or None, "Layers": layer_names})
            for t in tags or [None]:
                desc = {"mediaType": OCI_MANIFEST, "digest": mdigest, "size": len(manifest)}
                if t:
                    ref = reference.parse(t)
                    desc["annotations"] = {ANN_CONTAINERD: str(ref), ANN_REF: ref.tag}
                    repositories.setdefault(ref.familiar_name, {})[ref.tag] = layer_names[-1].split("/")[-1] \
                        if layer_names else ""
                oci_index.append(desc)
        add_bytes(tf, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add_bytes(tf, "index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                "manifests": oci_index}).encode())
        add_bytes(tf, "manifest.json", json.dumps(docker_manifest).encode())
        if repositories:
            add_bytes(tf, "repositories", json.dumps(repositories).encode())


def _tar_size(blob_path: str) -> int:
    from minibox.image import unpack

    with open(blob_path, "rb") as f:
        raw, closer = unpack.decompressed(f)
        n = 0
        while chunk := raw.read(1 << 20):
            n += len(chunk)
        if closer:
            closer()
    return n
