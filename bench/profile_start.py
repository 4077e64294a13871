"""Where the time of ``minibox run --rm --network none busybox true`` goes.

    python -m bench.profile_start [--runs 7] [--minibox CMD]

Runs the command ``--runs`` times under cProfile (plus ``-X importtime``
runs) on a private root and prints, as medians over the runs, the wall time
of the CLI process split into buckets: interpreter start, imports, argparse,
fsync, mount/umount, cgroup work, waiting for the container's child (which
covers the fork, the namespaces, the mounts inside and the exec), the
container dir's removal, and the rest. The buckets come from cProfile's
per-function times (builtins' own time, or a function's cumulative time),
so they are disjoint except where noted. For the lead's hot-path work: run
it before and after a change and put the two tables in the commit message.
"""

import argparse
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time

from bench import common

# bucket -> (kind, matcher): "tt" sums own time of functions whose "file:name"
# contains the matcher; "ct" takes the largest cumulative time of a match.
BUCKETS = [
    ("imports (modules' own code + compile)", "ct", "<frozen importlib._bootstrap>:_find_and_load"),
    ("argparse (add_argument + parse_args)", "argparse", ""),
    ("fsync", "tt", "<built-in method posix.fsync>"),
    ("mount/umount syscalls (parent)", "tt", "minibox._shim.mb_mount"),
    ("umount2 (parent)", "tt", "minibox._shim.mb_umount2"),
    ("cgroup create + limits (parent; the init joins itself)", "ct", "_make_cgroup"),
    ("cgroup driver detect", "ct", "open_driver"),
    ("fork", "tt", "<built-in method posix.fork>"),
    ("waiting on the child (pipe read / waitpid)", "tt", "<built-in method posix.read>"),
    ("waitpid", "tt", "<built-in method posix.waitpid>"),
    ("remove container dir (remove_tree)", "ct", "remove_tree"),
]


def _bucketize(path: str) -> dict:
    st = pstats.Stats(path)
    total = st.total_tt
    out = {}
    for name, kind, needle in BUCKETS:
        vals = []
        for (fname, line, func), (_cc, _nc, tt, ct, _callers) in st.stats.items():
            if kind == "argparse":
                # Only the two entry points: everything else argparse does runs inside them.
                if fname.endswith("argparse.py") and func in ("add_argument", "parse_args"):
                    vals.append(ct)
                continue
            key = f"{fname}:{func}" if fname != "~" else func
            if needle in key or needle in f"{os.path.basename(fname)}:{line}({func})":
                vals.append(tt if kind == "tt" else ct)
        out[name] = max(vals, default=0.0) if kind == "ct" else sum(vals)
    out["total (cProfile, inside the interpreter)"] = total
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_start", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--minibox", default=None)
    args = ap.parse_args(argv)
    cmd = common.minibox_command(args.minibox)
    work = tempfile.mkdtemp(prefix="minibox-profile-", dir="/var/tmp")
    root = common.private_root()
    mb = common.Minibox(cmd, root)
    try:
        mb("import", "-c", 'CMD ["sh"]', common.busybox_tar(work), "busybox:latest")
        run = ["--root", root, "run", "--rm", "--network", "none", "busybox", "true"]
        # The script as a file (cProfile runs a path), else -m minibox through runpy.
        target = cmd if len(cmd) == 1 else ["-m", "minibox"]
        # cProfile writes its stats when the script returns; the minibox command
        # ends with os._exit (cli.run), so the profiled script calls cli.main.
        driver = os.path.join(work, "profile_driver.py")
        with open(driver, "w") as f:
            f.write("import sys\nfrom minibox.cli import main\nsys.exit(main(sys.argv[1:]))\n")
        py = sys.executable
        for _ in range(2):  # warm the page cache and the image store
            subprocess.run(cmd + run, check=True, capture_output=True, cwd=work)
        walls, floors, buckets, imports = [], [], [], []
        for i in range(args.runs):
            t = time.perf_counter()
            subprocess.run(cmd + run, check=True, capture_output=True, cwd=work)
            walls.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run([py, "-c", "pass"], check=True, cwd=work)
            floors.append(time.perf_counter() - t)
            prof = os.path.join(work, f"prof{i}.out")
            subprocess.run([py, "-m", "cProfile", "-o", prof, driver, *run], check=True, capture_output=True,
                           cwd=work)
            buckets.append(_bucketize(prof))
            it = subprocess.run([py, "-X", "importtime", *target, *run], check=True, capture_output=True, text=True,
                                cwd=work).stderr
            imports.append(_import_self_total(it))
    finally:
        mb.remove_all()
        common.remove_root(root)
        common.remove_root(work)
    med = statistics.median
    print(f"{'minibox run --rm --network none busybox true (wall, no profiler)':<58} {med(walls) * 1000:8.1f} ms")
    print(f"{'python -c pass (interpreter start floor)':<58} {med(floors) * 1000:8.1f} ms")
    print(f"{'imports, sum of -X importtime self times':<58} {med(imports) * 1000:8.1f} ms")
    print("under cProfile (inflated by the profiler; medians of the buckets):")
    for name in buckets[0]:
        print(f"  {name:<56} {med(b[name] for b in buckets) * 1000:8.1f} ms")
    return 0


def _import_self_total(text: str) -> float:
    total = 0
    for line in text.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            try:
                total += int(line.split(":", 1)[1].split("|")[0])
            except ValueError:
                pass
    return total / 1e6


if __name__ == "__main__":
    sys.exit(main())
