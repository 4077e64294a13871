"""How minibox's costs grow: with the number of containers, with the number of layers.

* N = 1, 10, 50, 100 containers started with ``run -d`` through a bounded
  worker pool, then removed: wall time per container and the median latency
  of one ``run -d`` / ``rm -f``. The target: per-container time at 100
  within 1.5 x the time at 1.
* images of 1, 10, 50, 100 layers (busybox + one small file per extra layer,
  made as a ``docker save`` archive and ``minibox load``-ed): the overlay
  mount alone (``minibox.image.overlay.mount_overlay``, timed in this
  process) and a whole ``run --rm true``, interleaved across layer counts.
* disk: what N created containers of one image add to the root, next to the
  image's own size (only their writable layers should count).
"""

import hashlib
import io
import json
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import disk_usage
from bench.harness import Side, SideFailed, compare

SECTION = "scaling"
COUNTS = (1, 10, 50, 100)
LAYERS = (1, 10, 50, 100)


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def containers(ctx, counts=COUNTS) -> None:
    mb = ctx.mb
    points = []
    for n in counts:
        ids: list[str] = []

        def start_one(_i, ids=ids):
            t = time.perf_counter()
            cid = mb("run", "-d", "--network", "none", ctx.image, "sleep", "1000")
            ids.append(cid)
            return time.perf_counter() - t

        def rm_one(cid):
            return _timed(mb, "rm", "-f", cid)

        try:
            with ThreadPoolExecutor(max_workers=min(n, ctx.workers)) as pool:
                t0 = time.perf_counter()
                starts = list(pool.map(start_one, range(n)))
                start_wall = time.perf_counter() - t0
                t0 = time.perf_counter()
                rms = list(pool.map(rm_one, list(ids)))
                rm_wall = time.perf_counter() - t0
        except SideFailed as e:
            mb.remove_all()
            points.append({"x": n, "value": None, "failed": str(e)})
            break
        points.append({"x": n, "value": round(start_wall / n, 6), "rm_per_container": round(rm_wall / n, 6),
                       "run_d_median": round(statistics.median(starts), 6),
                       "rm_median": round(statistics.median(rms), 6), "workers": min(n, ctx.workers)})
        ctx.log(f"{n} containers: {start_wall / n * 1000:.0f} ms/container to start, "
                f"{rm_wall / n * 1000:.0f} ms/container to remove")
    ctx.results.add_series(SECTION, "run -d N containers in parallel, then rm -f", points, "s",
                           detail=f"value = start wall time / N; pool of {ctx.workers} workers")
    by_n = {p["x"]: p["value"] for p in points if p.get("value")}
    growth = round(by_n[100] / by_n[1], 4) if 1 in by_n and 100 in by_n else None
    ctx.results.add_headline("per-container start at 100 / at 1", growth, 1.5,
                             "" if growth else "the 100-container round did not complete")
    # At 1 the pool is idle but for one worker; at 10 it is as busy as at 100,
    # so 100 vs 10 shows growth that the parallelism at 100 would hide.
    if 10 in by_n and 100 in by_n:
        ctx.results.add_value(SECTION, "per-container start at 100 / at 10 (both parallel)",
                              round(by_n[100] / by_n[10], 4), "x")


# --- layers -------------------------------------------------------------------------------

def _layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def layered_archive(base_tar: str, layers: int, ref: str, dest: str) -> str:
    """A ``docker save`` archive of ``layers`` layers: the busybox root, then one file per layer."""
    with open(base_tar, "rb") as f:
        blobs = [f.read()]
    for i in range(1, layers):
        blobs.append(_layer_tar({f"layers/l{i:03d}": f"layer {i}\n".encode()}))
    diff_ids = [f"sha256:{hashlib.sha256(b).hexdigest()}" for b in blobs]
    config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
              "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"bench layer {i}"}
                          for i in range(layers)]}
    cfg = json.dumps(config).encode()
    cfg_name = f"{hashlib.sha256(cfg).hexdigest()}.json"
    with tarfile.open(dest, "w") as out:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            out.addfile(ti, io.BytesIO(data))
        names = []
        for i, b in enumerate(blobs):
            names.append(f"{i:03d}/layer.tar")
            add(names[-1], b)
        add(cfg_name, cfg)
        add("manifest.json", json.dumps([{"Config": cfg_name, "RepoTags": [ref], "Layers": names}]).encode())
    return dest


def layers(ctx, counts=LAYERS) -> None:
    mb = ctx.mb
    refs = {}
    for n in counts:
        ref = f"bench-layers-{n}:latest"
        path = layered_archive(ctx.tar, n, ref, os.path.join(ctx.work, f"layers-{n}.tar"))
        mb("load", "-q", "-i", path)
        os.unlink(path)
        refs[n] = ref
    # The mount alone, in this process (the library the engine calls).
    try:
        from minibox.image.overlay import mount_overlay, unmount_overlay
        from minibox.image.store import ImageStore
    except ImportError as e:
        ctx.results.add_absent(SECTION, "overlay mount time by layer count",
                               f"minibox is not importable by {sys.executable}: {e}")
    else:
        store = ImageStore(mb.root)
        scratch = tempfile.mkdtemp(prefix="mounts-", dir=ctx.work)

        def mount_once(n):
            img = store.resolve(refs[n])
            d = tempfile.mkdtemp(dir=scratch)
            for sub in ("upper", "work", "merged"):
                os.mkdir(os.path.join(d, sub))
            t = time.perf_counter()
            mount_overlay(store, img, f"{d}/upper", f"{d}/work", f"{d}/merged")
            elapsed = time.perf_counter() - t
            unmount_overlay(f"{d}/merged")
            shutil.rmtree(d)
            return elapsed

        try:
            out = compare([Side(f"{n} layers", lambda n=n: mount_once(n)) for n in counts],
                          max(ctx.rounds, 5), ctx.warmup)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        ctx.results.add_comparison(SECTION, "overlay mount (lookup + mount(2)) by layer count", out,
                                   base=f"{counts[-1]} layers",
                                   detail=f"ratio column: {counts[-1]} layers / that row")
    sides = [Side.argv(f"{n} layers", mb.argv("run", "--rm", "--network", "none", refs[n], "true"))
             for n in counts]
    out = compare(sides, ctx.rounds, ctx.warmup)
    ctx.results.add_comparison(SECTION, "run --rm --network none true by layer count", out,
                               base=f"{counts[-1]} layers", detail=f"ratio column: {counts[-1]} layers / that row")
    for n in counts:
        try:
            mb("rmi", refs[n])
        except SideFailed:
            pass


def disk(ctx, n: int = 10) -> None:
    mb = ctx.mb
    base = disk_usage(os.path.join(mb.root, "containers"))
    ids = []
    try:
        for _ in range(n):
            ids.append(mb("create", "--network", "none", ctx.image, "true"))
        added = disk_usage(os.path.join(mb.root, "containers")) - base
    finally:
        for i in range(0, len(ids), 50):
            mb("rm", "-f", *ids[i:i + 50])
    image = disk_usage(os.path.join(mb.root, "image"))
    ctx.results.add_value(SECTION, f"disk added per created container ({n} of one image)", added // n, "bytes",
                          detail=f"whole image store {image // 1024} KiB (shared, not copied)")
    if ctx.docker is not None:
        d = ctx.docker
        data = os.path.join(d.tmp, "data")
        before = disk_usage(data)
        dids = [d.docker("create", "--network", "none", ctx.docker_image, "true") for _ in range(n)]
        after = disk_usage(data)
        d.docker("rm", "-f", *dids)
        ctx.results.add_value(SECTION, f"docker: disk added per created container ({n})", (after - before) // n,
                              "bytes", detail="private dockerd data-root, overlay2")

