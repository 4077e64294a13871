"""What every section shares: the minibox under test, its private root, the busybox rootfs.

The benchmark never touches /var/lib/minibox: it imports rootfs/busybox.tar
into a private root under /var/tmp (on disk, like a real root; /tmp may be a
tmpfs) and removes it, mounts included, at the end.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import SideFailed, run_argv

REPO = Path(__file__).resolve().parent.parent


def minibox_command(override: str | None = None) -> list[str]:
    """``--minibox`` / $MINIBOX_BENCH_CMD, else the console script next to this Python, else -m minibox."""
    override = override or os.environ.get("MINIBOX_BENCH_CMD")
    if override:
        return shlex.split(override)
    script = Path(sys.executable).with_name("minibox")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "minibox"]


def busybox_tar(work: str) -> str:
    """rootfs/busybox.tar (``make rootfs``), built into ``work`` when the checkout has none."""
    tar = REPO / "rootfs" / "busybox.tar"
    if tar.exists():
        return str(tar)
    out = os.path.join(work, "busybox.tar")
    subprocess.run(["sh", str(REPO / "rootfs" / "build.sh"), out], check=True, capture_output=True)
    return out


class Minibox:
    """``minibox --root <private root> ...`` plus the few queries the sections need."""

    def __init__(self, cmd: list[str], root: str):
        self.cmd = cmd
        self.root = root

    def argv(self, *args: str) -> list[str]:
        return [*self.cmd, "--root", self.root, *args]

    def __call__(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run(self.argv(*args), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise SideFailed(f"minibox {' '.join(args)} -> {proc.returncode}: {proc.stderr.strip()[-300:]}")
        return proc.stdout.strip()

    def run_argv(self, *args: str) -> None:
        run_argv(self.argv(*args))

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.root, "containers", cid)

    def spec_for(self, *run_args: str) -> dict:
        """The config.json the engine writes for ``create run_args`` (the container is removed again)."""
        import json

        cid = self("create", *run_args)
        try:
            with open(os.path.join(self.container_dir(cid), "config.json")) as f:
                return json.load(f)
        finally:
            subprocess.run(self.argv("rm", "-f", cid), capture_output=True, check=False)

    def remove_all(self) -> None:
        ids = subprocess.run(self.argv("ps", "-aq"), capture_output=True, text=True, check=False).stdout.split()
        for i in range(0, len(ids), 50):
            subprocess.run(self.argv("rm", "-f", *ids[i:i + 50]), capture_output=True, check=False)


def private_root() -> str:
    return tempfile.mkdtemp(prefix="minibox-bench-root-", dir="/var/tmp")


def remove_root(path: str) -> None:
    """Unmount whatever is still mounted under ``path`` (deepest first), then delete it."""
    try:
        with open("/proc/self/mountinfo") as f:
            points = [ln.split()[4] for ln in f]
    except OSError:
        points = []
    for mp in sorted((p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def disk_usage(path: str) -> int:
    """Bytes allocated under ``path`` (st_blocks), not crossing into other mounts, hard links once."""
    try:
        dev = os.lstat(path).st_dev
    except FileNotFoundError:
        return 0
    seen = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        keep = []
        for d in dirnames:
            try:
                if os.lstat(os.path.join(dirpath, d)).st_dev == dev:
                    keep.append(d)
            except OSError:
                pass
        dirnames[:] = keep
        for name in filenames + keep:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


class Context:
    """What a section gets: the minibox under test, results, rounds, scratch dir, the docker peer."""

    def __init__(self, mb: Minibox, results, rounds: int, warmup: int, work: str, tar: str, workers: int):
        self.mb = mb
        self.results = results
        self.rounds = rounds
        self.warmup = warmup
        self.work = work
        self.tar = tar
        self.workers = workers
        self.docker = None          # a started peers.Dockerd, or None
        self.docker_absent = "docker not started for this section"
        self.docker_image = "mbbench-busybox:latest"
        self.image = "busybox:latest"

    def log(self, msg: str) -> None:
        print(f"bench: {msg}", file=sys.stderr, flush=True)
