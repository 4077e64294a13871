"""Shared fixtures: a private minibox root per test session, the busybox image, probes.

Integration tests call the installed ``minibox`` command (what a user runs)
with ``--root`` pointing at a temporary directory, so they never touch
/var/lib/minibox and clean up everything they create.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUSYBOX_TAR = REPO / "rootfs" / "busybox.tar"


def minibox_command() -> list[str]:
    """The installed console script next to this Python, else ``python -m minibox``."""
    script = Path(sys.executable).with_name("minibox")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "minibox"]


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something true (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def have_overlay() -> bool:
    try:
        return "overlay" in Path("/proc/filesystems").read_text()
    except OSError:
        return False


def _probe(feature: str) -> str | None:
    """Why ``feature`` is unavailable here, or None when it is available."""
    if os.geteuid() != 0:
        return "needs root"
    if feature == "root":
        return None
    if feature == "overlay":
        return None if have_overlay() else "overlayfs is not in /proc/filesystems"
    if feature == "busybox":
        return None if BUSYBOX_TAR.exists() or shutil.which("busybox") else "busybox-static is not installed"
    if feature == "userns":
        return None if Path("/proc/self/ns/user").exists() else "no user namespaces"
    raise ValueError(feature)


def requires(*features: str):
    """Mark a test as needing kernel features; it skips, with the reason, when one is missing."""
    reasons = [r for r in (_probe(f) for f in features) if r]
    return pytest.mark.skipif(bool(reasons), reason="; ".join(reasons) or "available")


class Minibox:
    """Runs ``minibox --root ROOT ...`` and returns the CompletedProcess."""

    def __init__(self, root: str):
        self.root = root
        self.cmd = minibox_command()

    def __call__(self, *args, check: bool = False, timeout: float = 60, input: str | None = None,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.cmd, "--root", self.root, *args], capture_output=True, text=True,
                              timeout=timeout, input=input, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"minibox {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([*self.cmd, "--root", self.root, *args], **kwargs)


def _ensure_busybox_tar() -> Path:
    if not BUSYBOX_TAR.exists():
        subprocess.run(["sh", str(REPO / "rootfs" / "build.sh"), str(BUSYBOX_TAR)], check=True)
    return BUSYBOX_TAR


@pytest.fixture(scope="session")
def session_root():
    path = tempfile.mkdtemp(prefix="minibox-test-", dir="/var/tmp")
    private_default_bridge(path)
    yield path
    _cleanup_root(path)


def private_default_bridge(path: str) -> None:
    """Give a test root a default ``bridge`` network of its own (device ``mbt…``, a free 10.214.x.0/24).

    So test runs never share (or remove) the host's minibox0 / 10.88.0.0/16,
    and _cleanup_root() can take the bridge and its iptables rules away.
    """
    if os.geteuid() != 0 or shutil.which("iptables-restore") is None:
        return
    import random

    from minibox.errors import Conflict
    from minibox.network import store

    for _ in range(40):
        try:
            store.create(path, store.DEFAULT_NETWORK, f"10.214.{random.randint(1, 254)}.0/24",
                         device=f"mbt{os.urandom(4).hex()}", predefined=True)
            return
        except Conflict as exc:
            if "overlaps" not in str(exc):
                raise


def _cleanup_root(path: str) -> None:
    """Remove every container (and so every mount and cgroup) a test run left, then the root."""
    if os.geteuid() == 0 and os.path.isdir(os.path.join(path, "containers")):
        mb = Minibox(path)
        ids = mb("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            mb("rm", "-f", *ids)
    if os.geteuid() == 0:
        from minibox.network import prune_stale, store

        prune_stale(path)
        store.remove_default(path)
    # Nothing may stay mounted below the root, whatever a test did.
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for mnt in sorted((m for m in mounts if m.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def mb(session_root) -> Minibox:
    """minibox on a session-wide root that already holds busybox:latest."""
    runner = Minibox(session_root)
    if _probe("busybox") is None:
        runner("import", "-c", 'CMD ["sh"]', str(_ensure_busybox_tar()), "busybox:latest", check=True)
    return runner


@pytest.fixture
def fresh_mb():
    """minibox on an empty root of its own (for tests that count or list everything)."""
    path = tempfile.mkdtemp(prefix="minibox-test-", dir="/var/tmp")
    private_default_bridge(path)
    runner = Minibox(path)
    if _probe("busybox") is None:
        runner("import", "-c", 'CMD ["sh"]', str(_ensure_busybox_tar()), "busybox:latest", check=True)
    yield runner
    _cleanup_root(path)
