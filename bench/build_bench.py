"""Build benchmark: the same Dockerfile and context under minibox and ``docker build``.

Three cases, as the seed's lesson goes: cold (``--no-cache``), warm with
nothing changed (every step cached), and warm with one app file changed
(only the last COPY reruns). Each case is timed ``--repeat`` times and the
median is kept. docker is measured only when its daemon answers; its base
image is the same busybox rootfs, imported. Results go to stdout and to
``bench/results/build.json``.

    python3 -m bench.build_bench [--files 300] [--repeat 5]

Needs root (minibox mounts overlayfs) and rootfs/busybox.tar (``make rootfs``).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUSYBOX_TAR = REPO / "rootfs" / "busybox.tar"

DOCKERFILE = """\
FROM {base}
WORKDIR /app
COPY deps.txt /app/
RUN for i in $(seq 1 200); do echo "dep $i" >> /app/installed.txt; done
COPY src /app/src
CMD ["sh", "-c", "ls /app/src | wc -l"]
"""


def minibox_cmd() -> list[str]:
    script = Path(sys.executable).with_name("minibox")
    return [str(script)] if script.exists() else [sys.executable, "-m", "minibox"]


def make_context(path: Path, files: int, base: str) -> None:
    (path / "src").mkdir(parents=True)
    (path / "deps.txt").write_text("\n".join(f"dep-{i}==1.0" for i in range(50)) + "\n")
    for i in range(files):
        (path / "src" / f"mod{i:04d}.py").write_text(f"# module {i}\n" + "x = 1\n" * 200)
    # What a .dockerignore should keep out: a big .git and node_modules.
    for name, size in ((".git/pack", 20 << 20), ("node_modules/dep/blob", 20 << 20)):
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            f.truncate(size)
    (path / ".dockerignore").write_text(".git\nnode_modules\n*.log\n")
    (path / "Dockerfile").write_text(DOCKERFILE.format(base=base))


def timed(cmd: list[str], env=None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def measure(build, touch, repeat: int) -> dict[str, float]:
    """build(no_cache) -> seconds; touch() changes one app file."""
    cold = [build(True) for _ in range(repeat)]
    warm = [build(False) for _ in range(repeat)]
    changed = []
    for _ in range(repeat):
        touch()
        changed.append(build(False))
    return {"cold": statistics.median(cold), "warm": statistics.median(warm),
            "one_file_changed": statistics.median(changed)}


def bench_minibox(ctx: Path, repeat: int, touch) -> dict[str, float]:
    root = tempfile.mkdtemp(prefix="minibox-bench-build-", dir="/var/tmp")
    mb = minibox_cmd() + ["--root", root]
    try:
        subprocess.run(mb + ["import", "-c", 'CMD ["sh"]', str(BUSYBOX_TAR), "bench-busybox:latest"],
                       check=True, capture_output=True)

        def build(no_cache: bool) -> float:
            return timed(mb + ["build", "-q", "-t", "bench-app"] + (["--no-cache"] if no_cache else [])
                         + [str(ctx)])

        return measure(build, touch, repeat)
    finally:
        subprocess.run(["umount", "-R", root], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def docker_available() -> str | None:
    if not shutil.which("docker"):
        return "docker is not installed"
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return "the docker daemon does not answer"
    return None


def bench_docker(ctx: Path, repeat: int, touch) -> dict[str, float]:
    env = dict(os.environ, DOCKER_BUILDKIT="1")
    subprocess.run(["docker", "import", "-c", 'CMD ["sh"]', str(BUSYBOX_TAR), "bench-busybox:latest"],
                   check=True, capture_output=True)
    try:
        def build(no_cache: bool) -> float:
            return timed(["docker", "build", "-q", "-t", "minibox-bench-app"]
                         + (["--no-cache"] if no_cache else []) + [str(ctx)], env)

        return measure(build, touch, repeat)
    finally:
        subprocess.run(["docker", "rmi", "-f", "minibox-bench-app", "bench-busybox:latest"], capture_output=True,
                       check=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=300, help="app files in the context")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (overlayfs)", file=sys.stderr)
        return 1
    if not BUSYBOX_TAR.exists():
        print(f"bench: {BUSYBOX_TAR} is missing: run make rootfs", file=sys.stderr)
        return 1
    ctx = Path(tempfile.mkdtemp(prefix="minibox-bench-ctx-"))
    counter = [0]

    def touch():
        counter[0] += 1
        (ctx / "src" / "mod0000.py").write_text(f"# changed {counter[0]}\n")

    try:
        make_context(ctx, args.files, "bench-busybox:latest")
        results = {"minibox": bench_minibox(ctx, args.repeat, touch)}
        why = docker_available()
        if why is None:
            results["docker"] = bench_docker(ctx, args.repeat, touch)
        else:
            results["docker_skipped"] = why
    finally:
        shutil.rmtree(ctx, ignore_errors=True)

    print(f"{'case':<20}{'minibox':>10}{'docker':>10}{'ratio':>8}")
    for case in ("cold", "warm", "one_file_changed"):
        m = results["minibox"][case]
        d = results.get("docker", {}).get(case)
        ratio = f"{m / d:.2f}" if d else "-"
        print(f"{case:<20}{m:>9.3f}s{(f'{d:.3f}s' if d else '-'):>10}{ratio:>8}")
    if "docker_skipped" in results:
        print(f"docker: skipped ({results['docker_skipped']})")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "build.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
