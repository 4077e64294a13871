"""The cgroup driver on the real kernel: v1 on the development host, v2 in the VM.

Each test creates a uniquely named cgroup below the test process's own
cgroup, puts a process it started into it, and destroys it at the end
(even on failure). A process is added while it waits on a pipe, so all of
its work is accounted to the cgroup.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from minibox import cgroups
from minibox.errors import MiniboxError

pytestmark = pytest.mark.root


def _driver():
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")
    try:
        return cgroups.open_driver()
    except MiniboxError as exc:
        pytest.skip(f"no usable cgroup hierarchy: {exc}")


def _require(drv, *controllers):
    have = set(drv.controllers())
    missing = [c for c in controllers if c not in have]
    if missing:
        pytest.skip(f"cgroup controller(s) {', '.join(missing)} not available (v{drv.version})")


@pytest.fixture
def drv():
    return _driver()


@pytest.fixture
def cg(drv):
    group = drv.create(f"minibox-test-{uuid.uuid4().hex[:12]}")
    try:
        yield group
    finally:
        group.destroy()
        assert not any(os.path.exists(p) for p in group.paths().values())


def _gated(code: str) -> subprocess.Popen:
    """A python child that runs ``code`` once a byte arrives on its stdin."""
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.buffer.read(1)\n" + code],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _release(proc):
    proc.stdin.write(b"x")
    proc.stdin.flush()


def _file(cg, v1_ctrl: str, v1_name: str, v2_name: str) -> str:
    paths = cg.paths()
    if "unified" in paths:
        return os.path.join(paths["unified"], v2_name)
    return os.path.join(paths[v1_ctrl], v1_name)


def _read(path):
    with open(path) as f:
        return f.read().strip()


def test_limits_land_in_the_kernel_files(drv, cg):
    _require(drv, "memory", "cpu", "pids")
    warnings = cg.apply({"memory": {"limit": 100 << 20, "swap": 200 << 20},
                         "cpu": {"quota": 50000, "period": 100000, "shares": 512}, "pids": {"limit": 20}})
    assert all("swap" in w for w in warnings)
    proc = subprocess.Popen(["sleep", "30"])
    try:
        cg.add(proc.pid)
        assert proc.pid in cg.pids()
        assert int(_read(_file(cg, "memory", "memory.limit_in_bytes", "memory.max"))) == 100 << 20
        assert _read(_file(cg, "pids", "pids.max", "pids.max")) == "20"
        if drv.version == 2:
            assert _read(_file(cg, "cpu", "", "cpu.max")) == "50000 100000"
            assert _read(_file(cg, "cpu", "", "cpu.weight")) == "20"
        else:
            assert _read(_file(cg, "cpu", "cpu.cfs_quota_us", "")) == "50000"
            assert _read(_file(cg, "cpu", "cpu.shares", "")) == "512"
        st = cg.stats()
        assert st["memory_limit"] == 100 << 20 and st["pids_limit"] == 20 and st["pids_current"] >= 1
    finally:
        proc.kill()
        proc.wait()


def test_memory_hog_is_oom_killed(drv, cg):
    _require(drv, "memory")
    cg.apply({"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    hog = _gated("chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))\n")
    try:
        cg.add(hog.pid)
        assert cg.oom_killed() is False
        _release(hog)
        rc = hog.wait(timeout=60)
    finally:
        hog.kill()
        hog.wait()
    assert rc == -signal.SIGKILL, f"hog exited {rc}: {hog.stderr.read().decode()[-300:]}"
    assert cg.oom_killed() is True


def test_plain_sigkill_is_not_an_oom_kill(drv, cg):
    _require(drv, "memory")
    cg.apply({"memory": {"limit": 64 << 20}})
    proc = subprocess.Popen(["sleep", "30"])
    cg.add(proc.pid)
    proc.kill()
    proc.wait()
    assert cg.oom_killed() is False


def test_fork_bomb_is_contained_by_pids_limit(drv, cg):
    _require(drv, "pids")
    cg.apply({"pids": {"limit": 20}})
    bomb = _gated(
        "import os, time\n"
        "ok = failed = 0\n"
        "for _ in range(100):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60); os._exit(0)\n"
        "        ok += 1\n"
        "    except BlockingIOError:\n"
        "        failed += 1\n"
        "print(ok, failed, flush=True)\n"
        "time.sleep(60)\n"
    )
    try:
        cg.add(bomb.pid)
        _release(bomb)
        ok, failed = map(int, bomb.stdout.readline().split())
        assert ok == 19 and failed == 81
        assert cg.stats()["pids_current"] == 20
        assert len(cg.pids()) == 20
    finally:
        cg.destroy()
        bomb.wait(timeout=10)
    assert cg.pids() == []


def test_cpus_half_gets_about_half_a_cpu(drv, cg):
    _require(drv, "cpu")
    if drv.version == 1:
        _require(drv, "cpuacct")
    cg.apply({"cpu": {"quota": 50000, "period": 100000}})
    spin = _gated("while True: pass\n")
    try:
        cg.add(spin.pid)
        _release(spin)
        time.sleep(0.3)
        u0, t0 = cg.stats()["cpu_usage_ns"], time.monotonic()
        time.sleep(3)
        u1, t1 = cg.stats()["cpu_usage_ns"], time.monotonic()
    finally:
        spin.kill()
        spin.wait()
    share = (u1 - u0) / 1e9 / (t1 - t0)
    # The quota caps it at 0.5; the lower bound tolerates a busy shared machine.
    assert 0.2 < share < 0.6, share


def test_freeze_thaw_and_kill_all(drv, cg):
    _require(drv, "freezer" if drv.version == 1 else "memory")
    ticker = _gated("import time\nwhile True:\n    print(time.monotonic(), flush=True); time.sleep(0.05)\n")
    try:
        cg.add(ticker.pid)
        _release(ticker)
        ticker.stdout.readline()
        cg.freeze()
        with open(f"/proc/{ticker.pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        assert state in ("D", "S", "t")
        cg.thaw()
        ticker.stdout.readline()
        cg.kill_all(signal.SIGTERM)
        assert ticker.wait(timeout=10) == -signal.SIGTERM
    finally:
        ticker.kill()
        ticker.wait()


def test_destroy_kills_leftovers_and_is_idempotent(drv):
    path = f"minibox-test-{uuid.uuid4().hex[:12]}/nested"
    assert drv.find(path) is None
    group = drv.create(path)
    assert drv.find(path).paths() == group.paths()
    proc = subprocess.Popen(["sleep", "60"])
    try:
        group.add(proc.pid)
        group.destroy()
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert not any(os.path.exists(p) for p in group.paths().values())
        group.destroy()
        assert drv.find(path) is None
    finally:
        proc.kill()
        proc.wait()
        for p in group.paths().values():
            top = os.path.dirname(p)
            if os.path.basename(top).startswith("minibox-test-") and os.path.isdir(top):
                os.rmdir(top)


def test_reopen_from_saved_paths(drv, cg):
    again = drv.open(cg.paths())
    proc = subprocess.Popen(["sleep", "30"])
    try:
        cg.add(proc.pid)
        assert again.pids() == [proc.pid]
    finally:
        proc.kill()
        proc.wait()


def test_remove_leftover_finds_and_kills(drv):
    path = f"minibox-test-{uuid.uuid4().hex[:12]}"
    group = drv.create(path)
    proc = subprocess.Popen(["sleep", "60"])
    try:
        group.add(proc.pid)
        assert cgroups.remove_leftover(path) is True
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert drv.find(path) is None
        assert cgroups.remove_leftover(path) is False
    finally:
        proc.kill()
        proc.wait()
        group.destroy()


def test_prune_empty_removes_only_old_empty_children(drv):
    parent = f"minibox-test-{uuid.uuid4().hex[:12]}"
    empty, busy = drv.create(f"{parent}/empty"), drv.create(f"{parent}/busy")
    proc = subprocess.Popen(["sleep", "60"])
    try:
        busy.add(proc.pid)
        assert cgroups.prune_empty(parent, min_age=3600) == []  # too young
        assert cgroups.prune_empty(parent, min_age=0) == ["empty"]
        assert drv.find(f"{parent}/empty") is None
        assert drv.find(f"{parent}/busy") is not None and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        for group in (empty, busy, drv.find(parent)):
            if group is not None:
                group.destroy()
