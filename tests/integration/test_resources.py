"""Resource limits through the CLI, as the seed's lab runs them: -m, OOM, --pids-limit,
--cpus, stats, update, and no cgroup left behind. Runs on v1 (host) and v2 (VM).
"""

import json
import time
import uuid

import pytest
from conftest import requires

from minibox import cgroups

pytestmark = requires("root", "overlay", "busybox")

# A file of the container's own cgroup, under either version (its /sys/fs/cgroup is its cgroup).
MEMORY_LIMIT = "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
CPU_QUOTA = "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
PIDS_MAX = "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"


def unique(prefix="res"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def names(mb):
    """Container names a test uses; all removed afterwards, whatever happened."""
    used = []
    yield lambda: used.append(unique()) or used[-1]
    if used:
        mb("rm", "-f", *used)


def inspect(mb, name):
    return json.loads(mb("inspect", name, check=True).stdout)[0]


def no_cgroup_left(cid):
    return cgroups.open_driver().find(f"minibox/{cid}") is None


def test_memory_limit_is_in_the_containers_cgroup(mb):
    r = mb("run", "--rm", "-m", "100m", "busybox", "sh", "-c", f"echo hello; {MEMORY_LIMIT}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hello", str(100 << 20)]


def test_memory_hog_exits_137_with_oomkilled_true(mb, names):
    name = names()
    r = mb("run", "--name", name, "-m", "32m", "busybox", "sh", "-c", "x=a; while :; do x=$x$x; done", timeout=120)
    assert r.returncode == 137, r.stderr
    info = inspect(mb, name)
    assert info["State"]["OOMKilled"] is True
    assert info["State"]["ExitCode"] == 137
    assert no_cgroup_left(info["Id"])


def test_plain_sigkill_is_not_oomkilled(mb, names):
    name = names()
    mb("run", "-d", "--name", name, "-m", "32m", "busybox", "sleep", "60", check=True)
    mb("kill", name, check=True)
    mb("wait", name, timeout=30)
    info = inspect(mb, name)
    assert info["State"]["ExitCode"] == 137
    assert info["State"]["OOMKilled"] is False


def test_fork_bomb_is_contained_by_pids_limit(mb, names):
    name = names()
    # The subshell forks until the kernel refuses, then exits; its sleeps stay,
    # and the outer shell execs the last sleep: 19 or 20 tasks, never more.
    bomb = "(while :; do sleep 300 & done) 2>/dev/null; sleep 300"
    t0 = time.monotonic()
    mb("run", "-d", "--name", name, "--pids-limit", "20", "busybox", "sh", "-c", bomb, check=True)
    cid = inspect(mb, name)["Id"]
    cg = cgroups.open_driver().find(f"minibox/{cid}")
    seen_max = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen_max = max(seen_max, cg.stats()["pids_current"])
        if seen_max >= 19:
            break
        time.sleep(0.05)
    assert 19 <= seen_max <= 20, seen_max
    row = mb("stats", "--no-stream", name, check=True).stdout.splitlines()[1].split()
    assert row[-1] in ("19", "20"), row
    host_view = cg.stats()
    assert host_view["pids_limit"] == 20 and host_view["pids_current"] <= 20
    # The host stays responsive: our own commands ran promptly throughout.
    assert time.monotonic() - t0 < 60
    mb("rm", "-f", name, check=True)
    assert no_cgroup_left(cid)


def test_cpus_half_is_the_quota_and_about_half_a_cpu(mb, names):
    r = mb("run", "--rm", "--cpus", "0.5", "busybox", "sh", "-c", CPU_QUOTA)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "50000"
    name = names()
    mb("run", "-d", "--name", name, "--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done", check=True)
    time.sleep(0.5)
    row = mb("stats", "--no-stream", name, check=True).stdout.splitlines()[1].split()
    cpu = float(row[2].rstrip("%"))
    # Capped at 50%; the lower bound tolerates a loaded shared machine (or a TCG guest).
    assert 20.0 < cpu < 60.0, row


def test_stats_no_stream_table(mb, names):
    name = names()
    mb("run", "-d", "--name", name, "-m", "64m", "busybox", "sleep", "60", check=True)
    out = mb("stats", "--no-stream", name, check=True).stdout.splitlines()
    assert out[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                              "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    row = out[1].split()
    assert row[1] == name and row[5] == "64MiB" and row[-1] == "1"
    # A stopped container shows zeros; an unknown one is an error (125).
    mb("kill", name, check=True)
    mb("wait", name, timeout=30)
    assert mb("stats", "--no-stream", name, check=True).stdout.splitlines()[1].split()[2] == "0.00%"
    assert mb("stats", "--no-stream", "no-such-container").returncode == 125


def test_stats_streams_until_interrupted(mb, names):
    import signal
    import subprocess

    name = names()
    mb("run", "-d", "--name", name, "busybox", "sleep", "60", check=True)
    proc = mb.popen("stats", name, stdout=subprocess.PIPE, text=True)
    try:
        headers = 0
        deadline = time.monotonic() + 20
        while headers < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            headers += line.startswith("CONTAINER ID")
        assert headers == 2
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_update_changes_limits_of_a_running_container(mb, names):
    name = names()
    mb("run", "-d", "--name", name, "-m", "64m", "--pids-limit", "30", "busybox", "sleep", "60", check=True)
    mb("update", "-m", "96m", "--memory-swap", "192m", "--pids-limit", "40", name, check=True)
    r = mb("exec", name, "sh", "-c", f"{MEMORY_LIMIT}; {PIDS_MAX}", check=True)
    assert r.stdout.split() == [str(96 << 20), "40"]
    hc = inspect(mb, name)["HostConfig"]
    assert hc["Memory"] == 96 << 20 and hc["PidsLimit"] == 40


INVALID = [
    (["-m", "lots"], "--memory"),
    (["--cpus", "-1"], "--cpus"),
    (["--memory-swap", "1g"], "memory limit"),
    (["--pids-limit", "x"], "--pids-limit"),
]


def test_invalid_values_exit_125_and_create_nothing(mb):
    before = mb("ps", "-aq").stdout.split()
    for flags, message in INVALID:
        r = mb("run", "--rm", *flags, "busybox", "true")
        assert r.returncode == 125, flags
        assert message in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert mb("ps", "-aq").stdout.split() == before
