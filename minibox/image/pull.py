"""``pull``: fetch an image over the distribution API into the store.

Manifest (index → the platform's manifest) → config → layers. Layers are
fetched concurrently (docker's default of 3 at a time) and unpacked while
they stream; each is verified twice (blob digest + size from the manifest,
diff_id from the config) before its dir is renamed into the store. The image
and its tag are recorded last, so an interrupted or failed pull leaves the
tag index untouched and at most complete, verified, unreferenced layers
(which ``image prune`` collects).
"""

import json
import sys
import threading

from minibox.errors import MiniboxError, NotFound
from minibox.image import platform as platforms
from minibox.image import reference, registry
from minibox.image.progress import Progress

MAX_LAYERS = 500  # overlayfs stacks at most 500 lower layers
CONCURRENCY = 3


class _Cancelled(Exception):
    pass


class _Reader:
    """Counts bytes for the progress line and stops when another layer failed."""

    def __init__(self, raw, on_read, cancel: threading.Event, label: str):
        self.raw = raw
        self.on_read = on_read
        self.cancel = cancel
        self.label = label
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        import http.client

        if self.cancel.is_set():
            raise _Cancelled()
        try:
            data = self.raw.read(size if size and size > 0 else 1 << 20)
        except (OSError, http.client.HTTPException) as exc:
            raise registry.RegistryError(f"{self.label}: download failed after {self.count} bytes: "
                                         f"{exc.__class__.__name__}") from None
        self.count += len(data)
        self.on_read(self.count)
        return data


def select_platform(index: dict, want: dict, what: str) -> dict:
    """The first index entry whose platform matches ``want`` (attestations skipped)."""
    for desc in index.get("manifests") or []:
        if desc.get("mediaType") not in (registry.MT_OCI_MANIFEST, registry.MT_DOCKER_MANIFEST, None):
            continue
        if platforms.matches(want, desc.get("platform") or {}):
            return desc
    plat = "/".join(p for p in (want["os"], want["architecture"], want.get("variant")) if p)
    raise NotFound(f"{what}: no matching manifest for {plat} in the manifest list entries")


def check_manifest(doc: dict, media: str, what: str) -> tuple[dict, list]:
    """(config descriptor, layer descriptors) of an image manifest, validated."""
    if media not in (registry.MT_OCI_MANIFEST, registry.MT_DOCKER_MANIFEST):
        raise MiniboxError(f"{what}: unsupported manifest media type {media!r}")
    if doc.get("schemaVersion") != 2:
        raise MiniboxError(f"{what}: unsupported manifest schema version {doc.get('schemaVersion')!r}")
    config = doc.get("config") or {}
    layers = doc.get("layers")
    if not isinstance(layers, list) or not reference.is_digest(config.get("digest", "")):
        raise MiniboxError(f"{what}: malformed manifest")
    if len(layers) > MAX_LAYERS:
        raise MiniboxError(f"{what}: {len(layers)} layers exceed overlayfs's limit of {MAX_LAYERS}")
    for desc in layers:
        if desc.get("mediaType") not in registry.LAYER_TYPES:
            raise MiniboxError(f"{what}: unsupported layer media type {desc.get('mediaType')!r}")
        if not reference.is_digest(desc.get("digest", "")) or not isinstance(desc.get("size"), int):
            raise MiniboxError(f"{what}: malformed layer descriptor {desc!r}")
    return config, layers


def pull(store, name: str, *, platform: str | None = None, insecure: bool = False,
         quiet: bool = False, out=None, concurrency: int = CONCURRENCY):
    """Pull ``name`` into ``store``; returns the Image. Errors name the image or layer."""
    out = out or sys.stdout
    ref = reference.parse(name)
    what = ref.familiar()
    want = platforms.parse(platform)
    progress = Progress(out, quiet)
    client = registry.Client(ref.domain, root=store.root, insecure=insecure)

    body, media, top_digest = client.get_manifest(ref.path, ref.digest or ref.tag, what)
    progress.line(f"{ref.tag or ref.digest}: Pulling from {_remote_name(ref)}")
    doc = json.loads(body)
    if media in registry.INDEX_TYPES:
        desc = select_platform(doc, want, what)
        body, media, _ = client.get_manifest(ref.path, desc["digest"], what)
        doc = json.loads(body)
    config_desc, layers = check_manifest(doc, media, what)
    config_bytes = client.get_blob(ref.path, config_desc["digest"], registry.MAX_CONFIG, f"{what}: config")
    try:
        config = json.loads(config_bytes)
    except ValueError:
        raise MiniboxError(f"{what}: image config is not JSON") from None
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(layers) or not all(reference.is_digest(d) for d in diff_ids):
        raise MiniboxError(f"{what}: config lists {len(diff_ids)} diff_ids for {len(layers)} layers")
    if platform and not platforms.matches(want, {"os": config.get("os"), "architecture": config.get("architecture"),
                                                  "variant": config.get("variant")}):
        raise MiniboxError(f"{what}: image is {config.get('os')}/{config.get('architecture')}, "
                           f"not the requested platform {platform}")

    store.ensure()
    store.reap_tmp()
    with store.gc_guard():
        fresh = _fetch_layers(store, client, ref, layers, diff_ids, progress, what, concurrency)
        meta_layers = [{"diff_id": d, "blob": l["digest"], "media_type": l["mediaType"], "size": l["size"]}
                       for d, l in zip(diff_ids, layers)]
        img = store.add_image(config_bytes, meta_layers, tags=[ref],
                              repo_digests=[f"{ref.familiar_name}@{top_digest}"])
    progress.done()
    progress.line(f"Digest: {top_digest}")
    status = "Downloaded newer image for" if fresh else "Image is up to date for"
    progress.line(f"Status: {status} {_remote_name(ref, full=True)}")
    out.write(f"{_remote_name(ref, full=True)}\n")
    out.flush()
    return img


def _remote_name(ref, full: bool = False) -> str:
    """docker's wording: ``library/alpine`` in headers, ``docker.io/library/alpine:latest`` last."""
    if not full:
        return ref.path
    name = ref.repository
    return f"{name}:{ref.tag}" if ref.tag else f"{name}@{ref.digest}"


def _fetch_layers(store, client, ref, layers, diff_ids, progress, what, concurrency) -> int:
    """Download + unpack the missing layers concurrently; returns how many were fetched."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    todo = []
    for desc, diff_id in zip(layers, diff_ids):
        key = desc["digest"][7:19]
        if store.has_layer(diff_id) and store.has_blob(desc["digest"]):
            progress.update(key, "Already exists")
        else:
            progress.update(key, "Pulling fs layer")
            todo.append((desc, diff_id, key))
    if not todo:
        return 0
    cancel = threading.Event()

    def fetch(desc, diff_id, key):
        label = f"{what}: layer {desc['digest']}"
        resp = client.open_blob(ref.path, desc["digest"], label)
        with resp:
            progress.update(key, "Downloading", 0, desc["size"])
            reader = _Reader(resp, lambda n: progress.update(key, "Downloading", n, desc["size"]), cancel, label)
            store.add_layer_blob(reader, diff_id=diff_id, blob_digest=desc["digest"], blob_size=desc["size"],
                                 label=label)
        progress.update(key, "Pull complete")

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(fetch, *job) for job in todo]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None and not isinstance(f.exception(), _Cancelled)]
        if failed:
            cancel.set()
            for f in futures:
                f.cancel()
            wait(futures)
            progress.done()
            raise failed[0].exception()
    return len(todo)


def ensure_image(store, name: str, *, pull_policy: str = "missing", platform: str | None = None,
                 quiet: bool = False, out=None):
    """The image ``run``/``create`` use: resolved locally, pulled when missing (docker's
    ``--pull missing``), always pulled (``always``) or never (``never``).

    Progress goes to ``out`` (stderr by default, as docker run prints it), after
    docker's ``Unable to find image 'x' locally`` line.
    """
    out = out or sys.stderr
    if pull_policy not in ("missing", "always", "never"):
        raise MiniboxError(f"invalid pull policy {pull_policy!r}: use missing, always or never")
    if pull_policy != "always":
        try:
            return store.resolve(name)
        except NotFound:
            if pull_policy == "never":
                raise
    shown = reference.parse(name).familiar() if not name.startswith("sha256:") else name
    if pull_policy == "missing" and not quiet:
        out.write(f"Unable to find image '{shown}' locally\n")
    pull(store, name, platform=platform, quiet=quiet, out=_NoFinalLine(out))
    return store.resolve(name)


class _NoFinalLine:
    """docker run shows the pull's progress but not pull's closing reference line."""

    def __init__(self, out):
        self.out = out
        self.isatty = getattr(out, "isatty", lambda: False)
        self._held = ""

    def write(self, text: str) -> None:
        self.out.write(self._held)
        self._held = text

    def flush(self) -> None:
        self.out.flush()
