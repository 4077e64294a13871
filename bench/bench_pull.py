"""Pull + unpack benchmark: ``minibox pull`` against ``skopeo copy`` + ``umoci unpack``.

Both sides fetch the same image from the same docker-registry on 127.0.0.1
and end with an unpacked root filesystem on local disk. Rounds are
interleaved (minibox, skopeo+umoci, minibox, ...) so drift in the machine's
load hits both alike; each round starts from empty destination dirs. The
result is the ratio of medians (minibox / skopeo+umoci; below 1.0 means
minibox is faster).

    sudo python3 bench/bench_pull.py [--rounds 5] [--json out.json]

The image: the busybox rootfs, a layer of many small files (/usr/share/doc)
and a layer of large files (shared libraries), gzip-compressed, as registries
serve them.
"""

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _imgreg():
    """The registry/layout helpers the integration tests use (tests/integration/imgreg.py)."""
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    import imgreg

    return imgreg


def dir_layer(src: str, arcname: str, limit: int) -> bytes:
    """A layer tar of up to ``limit`` bytes of regular files from ``src``."""
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                size = os.path.getsize(path)
                if total + size > limit:
                    continue
                tf.add(path, arcname=os.path.join(arcname, os.path.relpath(path, src)), recursive=False)
                total += size
    return buf.getvalue()


def build_image(work: str):
    rootfs = os.path.join(work, "busybox.tar")
    subprocess.run(["sh", os.path.join(REPO, "rootfs", "build.sh"), rootfs], check=True, capture_output=True)
    with open(rootfs, "rb") as f:
        layers = [f.read()]
    layers.append(dir_layer("/usr/share/doc", "usr/share/doc", 60 << 20))
    layers.append(dir_layer("/usr/lib/x86_64-linux-gnu", "usr/lib", 80 << 20))
    ir = _imgreg()
    reg = ir.Registry(os.path.join(work, "registry"))
    lay = ir.OCILayout(os.path.join(work, "oci"))
    lay.tag(lay.image(layers), "bench")
    ir.push(os.path.join(work, "oci"), "bench", f"{reg.host}/bench/image:1")
    print(f"image: {len(layers)} layers, {sum(map(len, layers)) / 1e6:.0f} MB uncompressed", file=sys.stderr)
    return reg, f"{reg.host}/bench/image:1"


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t


def minibox_round(work: str, ref: str) -> float:
    root = os.path.join(work, "mb-root")
    shutil.rmtree(root, ignore_errors=True)
    try:
        return timed([sys.executable, "-m", "minibox", "--root", root, "pull", "-q", ref])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def skopeo_umoci_round(work: str, ref: str) -> float:
    layout, bundle = os.path.join(work, "sk-oci"), os.path.join(work, "sk-bundle")
    for d in (layout, bundle):
        shutil.rmtree(d, ignore_errors=True)
    try:
        t = timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:bench"])
        return t + timed(["umoci", "unpack", "--image", f"{layout}:bench", bundle])
    finally:
        for d in (layout, bundle):
            shutil.rmtree(d, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    why = _imgreg().missing_tools() or (None if shutil.which("umoci") else "umoci is needed (apt-get install umoci)")
    if why:
        print(f"bench_pull: skipped: {why}", file=sys.stderr)
        return 0
    work = tempfile.mkdtemp(prefix="minibox-bench-pull-", dir="/var/tmp")
    reg = None
    try:
        reg, ref = build_image(work)
        mb, sk = [], []
        minibox_round(work, ref)  # warm the page cache of the registry's blobs for both sides
        for i in range(args.rounds):
            mb.append(minibox_round(work, ref))
            sk.append(skopeo_umoci_round(work, ref))
            print(f"round {i + 1}: minibox {mb[-1]:.3f}s  skopeo+umoci {sk[-1]:.3f}s", file=sys.stderr)
        result = {
            "benchmark": "pull+unpack from a loopback registry",
            "rounds": args.rounds,
            "minibox_median_s": round(statistics.median(mb), 4),
            "skopeo_umoci_median_s": round(statistics.median(sk), 4),
            "ratio": round(statistics.median(mb) / statistics.median(sk), 3),
        }
        print(json.dumps(result, indent=1))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
        return 0
    finally:
        if reg is not None:
            reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
