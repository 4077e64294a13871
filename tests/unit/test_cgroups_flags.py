"""docker's resource flags → OCI linux.resources, and the one-line errors (exit 125)."""

import argparse
import os

import pytest

from minibox.cgroups.flags import add_arguments, resources_from_args
from minibox.errors import UsageError


def parse(*argv, ncpu=4):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return resources_from_args(p.parse_args(list(argv)), ncpu=ncpu)


def test_nothing_set_is_empty():
    assert parse() == {}


def test_memory_alone_gets_twice_as_much_swap():
    assert parse("-m", "100m") == {"memory": {"limit": 100 << 20, "swap": 200 << 20}}


def test_memory_swap_total_and_unlimited():
    assert parse("-m", "100m", "--memory-swap", "300m")["memory"]["swap"] == 300 << 20
    assert parse("-m", "100m", "--memory-swap", "-1")["memory"]["swap"] == -1
    assert parse("-m", "100m", "--memory-swap", "0")["memory"]["swap"] == 200 << 20


@pytest.mark.parametrize("argv,match", [
    (["-m", "lots"], "--memory"),
    (["-m", "1m"], "6MB"),
    (["--memory-swap", "100m"], "memory limit"),
    (["-m", "100m", "--memory-swap", "50m"], "larger than memory"),
    (["-m", "100m", "--memory-reservation", "200m"], "reservation"),
    (["--cpus", "half"], "--cpus"),
    (["--cpus", "8"], "only 4 CPUs"),
    (["--cpus", "1", "--cpu-quota", "5000"], "conflicting"),
    (["--cpu-period", "10"], "1ms"),
    (["--cpu-shares", "x"], "--cpu-shares"),
    (["--pids-limit", "many"], "--pids-limit"),
    (["--blkio-weight", "5"], "10 to 1000"),
    (["--cpuset-cpus", "a-b"], "--cpuset-cpus"),
    (["--cpuset-cpus", "3-1"], "--cpuset-cpus"),
    (["--device-read-bps", "/dev/null:1mb"], "not a block device"),
    (["--device-read-bps", "/nonexistent/dev:1mb"], "No such file"),
    (["--device-write-bps", "nocolon"], "PATH:RATE"),
])
def test_bad_values_are_usage_errors(argv, match):
    with pytest.raises(UsageError, match=match):
        parse(*argv)


def test_cpu_flags():
    assert parse("--cpus", "0.5")["cpu"] == {"quota": 50000, "period": 100000}
    assert parse("--cpu-shares", "512", "--cpuset-cpus", "0-1")["cpu"] == {"shares": 512, "cpus": "0-1"}
    assert parse("--cpu-period", "50000", "--cpu-quota", "25000")["cpu"] == {"period": 50000, "quota": 25000}


def test_pids_and_blkio():
    assert parse("--pids-limit", "20")["pids"] == {"limit": 20}
    assert parse("--pids-limit", "0")["pids"] == {"limit": -1}
    assert parse("--blkio-weight", "300")["blockIO"] == {"weight": 300}


def _a_block_device():
    for name in sorted(os.listdir("/sys/block")) if os.path.isdir("/sys/block") else []:
        path = f"/dev/{name}"
        if os.path.exists(path):
            return path
    return None


def test_device_throttle_resolves_major_minor():
    dev = _a_block_device()
    if not dev:
        pytest.skip("no block device node under /dev")
    st = os.stat(dev)
    res = parse("--device-read-bps", f"{dev}:1mb", "--device-write-iops", f"{dev}:100")
    assert res["blockIO"]["throttleReadBpsDevice"] == [
        {"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev), "rate": 1 << 20}]
    assert res["blockIO"]["throttleWriteIOPSDevice"][0]["rate"] == 100


def test_update_parser_has_no_create_only_flags():
    p = argparse.ArgumentParser()
    add_arguments(p, update=True)
    args = p.parse_args(["-m", "64m", "--cpus", "1"])
    assert not hasattr(args, "cgroup_parent")
    assert resources_from_args(args, ncpu=2)["memory"]["limit"] == 64 << 20
