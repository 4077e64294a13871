"""Does ``--trace`` support cost the untraced ``run`` anything?

    python3 bench/bench_trace_overhead.py [--baseline REF] [-n RUNS] [--json FILE]

Times ``minibox run --rm --network none busybox true`` (no ``--trace``) with
this checkout and with a baseline commit (default: the parent of the first
commit that added minibox/runtime/tracing.py, i.e. the tree before the trace
work), interleaved in a random order per round so machine noise hits all alike, and prints the
median and the ratio. Also times the traced run, for scale. The bar: the
untraced ratio stays within noise of 1.0 (the trace costs only ``if trace:``
tests; tracing.py is imported only when tracing).

The baseline is exported with ``git archive`` into a temp dir and given this
checkout's compiled extensions and helpers (the C code is unchanged by the
trace work), and both sides share one temporary minibox root.
"""

import argparse
import glob
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", HERE, *args], check=True, capture_output=True, text=True).stdout.strip()


def default_baseline() -> str:
    first = git("log", "--diff-filter=A", "--format=%H", "--", "minibox/runtime/tracing.py").split()[-1]
    return f"{first}^"


def export(ref: str, dest: str) -> None:
    archive = subprocess.run(["git", "-C", HERE, "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    for path in glob.glob(os.path.join(HERE, "minibox", "_*.so")) + \
            glob.glob(os.path.join(HERE, "minibox", "libexec", "minibox-*")):
        shutil.copy2(path, os.path.join(dest, os.path.relpath(path, HERE)))


def timed(tree: str, root: str, extra: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=tree)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "minibox", "--root", root, "run", "--rm", *extra,
                    "--network", "none", "busybox", "true"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="git ref to compare with (default: the tree before tracing.py)")
    ap.add_argument("-n", type=int, default=30, help="runs per side (default 30)")
    ap.add_argument("--json", help="also write the results here")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_trace_overhead: needs root (it runs containers)", file=sys.stderr)
        return 2
    ref = opts.baseline or default_baseline()
    tmp = tempfile.mkdtemp(prefix="mb-bench-trace-", dir="/var/tmp")
    root = os.path.join(tmp, "root")
    base_tree = os.path.join(tmp, "baseline")
    os.mkdir(base_tree)
    try:
        export(ref, base_tree)
        tar = os.path.join(HERE, "rootfs", "busybox.tar")
        subprocess.run([sys.executable, "-m", "minibox", "--root", root, "import", "-c", 'CMD ["sh"]', tar,
                        "busybox:latest"], check=True, env=dict(os.environ, PYTHONPATH=HERE),
                       stdout=subprocess.DEVNULL)
        for tree in (HERE, base_tree):  # warm caches (seccomp filter, page cache)
            timed(tree, root, [])
        times = {"this": [], "baseline": [], "this --trace": []}
        sides = {"this": (HERE, []), "baseline": (base_tree, []), "this --trace": (HERE, ["--trace"])}
        order = list(sides)
        for _ in range(opts.n):
            random.shuffle(order)  # no side always runs right after the same other one
            for side in order:
                tree, extra = sides[side]
                times[side].append(timed(tree, root, extra))
    finally:
        subprocess.run(["umount", "-R", "-l", root], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"baseline_ref": ref, "runs": opts.n, "median_s": med,
              "untraced_ratio": med["this"] / med["baseline"],
              "traced_ratio": med["this --trace"] / med["baseline"]}
    print(f"baseline {ref}: median {med['baseline'] * 1000:.1f} ms")
    print(f"this tree, untraced: median {med['this'] * 1000:.1f} ms  (ratio {result['untraced_ratio']:.3f})")
    print(f"this tree, --trace:  median {med['this --trace'] * 1000:.1f} ms  (ratio {result['traced_ratio']:.3f})")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
