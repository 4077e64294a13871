"""Pure conversions: docker units, swap semantics, runc's weight formulas, write plans."""

import pytest

from minibox.cgroups import convert
from minibox.errors import UsageError


@pytest.mark.parametrize("text,expected", [
    ("100m", 100 << 20), ("1g", 1 << 30), ("1G", 1 << 30), ("512k", 512 << 10), ("1024", 1024),
    ("1.5g", int(1.5 * (1 << 30))), ("100MB", 100 << 20), ("100MiB", 100 << 20), ("2t", 2 << 40), ("7b", 7),
])
def test_parse_bytes_docker_units(text, expected):
    assert convert.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-1", "10x", "1.2.3m", "m"])
def test_parse_bytes_rejects_garbage_naming_the_flag(text):
    with pytest.raises(UsageError, match="--memory"):
        convert.parse_bytes(text, "--memory")


def test_memory_swap_minus_one_is_unlimited():
    assert convert.parse_memory_swap("-1") == convert.UNLIMITED
    assert convert.parse_memory_swap("200m") == 200 << 20


def test_cpus_to_quota():
    nano = convert.parse_cpus("0.5", ncpu=2)
    assert nano == 500_000_000
    assert convert.cpus_to_quota(nano) == (50_000, 100_000)
    assert convert.cpus_to_quota(convert.parse_cpus("1.5", 2)) == (150_000, 100_000)


@pytest.mark.parametrize("text", ["abc", "-1", "3", "0.001"])
def test_cpus_out_of_range(text):
    with pytest.raises(UsageError, match="--cpus|CPUs"):
        convert.parse_cpus(text, ncpu=2)


@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 39), (262144, 10000), (512, 20), (0, 0), (1, 1)])
def test_shares_to_weight_matches_runc(shares, weight):
    assert convert.shares_to_weight(shares) == weight


@pytest.mark.parametrize("w,io", [(10, 1), (1000, 10000), (500, 4950)])
def test_blkio_weight_to_io_weight(w, io):
    assert convert.blkio_weight_to_io_weight(w) == io


def test_swap_v2_is_total_minus_memory():
    assert convert.swap_v2(100, 300) == 200
    assert convert.swap_v2(100, -1) == -1
    assert convert.swap_v2(100, None) is None
    assert convert.swap_v2(100, 100) == 0
    with pytest.raises(UsageError):
        convert.swap_v2(200, 100)
    with pytest.raises(UsageError):
        convert.swap_v2(None, 100)


FULL = {
    "memory": {"limit": 100 << 20, "swap": 200 << 20, "reservation": 50 << 20},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
    "pids": {"limit": 20},
    "blockIO": {
        "weight": 500,
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
    },
}


def test_v1_plan():
    assert convert.v1_writes(FULL) == [
        ("memory.limit_in_bytes", str(100 << 20)),
        ("memory.memsw.limit_in_bytes", str(200 << 20)),
        ("memory.soft_limit_in_bytes", str(50 << 20)),
        ("cpu.shares", "512"),
        ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_quota_us", "50000"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
        ("pids.max", "20"),
        ("blkio.weight", "500"),
        ("blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blkio.throttle.write_iops_device", "8:0 100"),
    ]


def test_v1_memsw_written_first_when_it_grows():
    res = {"memory": {"limit": 300, "swap": 600}}
    assert [f for f, _ in convert.v1_writes(res, current_memsw=400)] == [
        "memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    assert [f for f, _ in convert.v1_writes(res, current_memsw=800)] == [
        "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    unlimited = {"memory": {"limit": 300, "swap": -1}}
    assert convert.v1_writes(unlimited)[0] == ("memory.memsw.limit_in_bytes", "-1")


def test_v2_plan():
    assert convert.v2_writes(FULL) == [
        ("memory.max", str(100 << 20)),
        ("memory.swap.max", str(100 << 20)),
        ("memory.low", str(50 << 20)),
        ("cpu.weight", "20"),
        ("cpu.max", "50000 100000"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
        ("pids.max", "20"),
        ("io.weight", "default 4950"),
        ("io.max", "8:0 rbps=1048576"),
        ("io.max", "8:0 wiops=100"),
    ]


def test_unlimited_values():
    res = {"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1}, "cpu": {"quota": -1}}
    assert convert.v2_writes(res) == [
        ("memory.max", "max"), ("memory.swap.max", "max"), ("cpu.max", "max 100000"), ("pids.max", "max")]
    assert ("pids.max", "max") in convert.v1_writes(res)
    assert ("cpu.cfs_quota_us", "-1") in convert.v1_writes(res)


def test_unified_passthrough_and_devices():
    assert convert.v2_writes({"unified": {"memory.high": "5000000"}}) == [("memory.high", "5000000")]
    rules = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    writes = convert.v1_writes({"devices": rules})
    assert writes[:3] == [("devices.deny", "a *:* rwm"), ("devices.allow", "c 1:3 rwm"),
                          ("devices.allow", "c *:* m")]
    # runc's standard allow list follows, without repeating c 1:3.
    assert ("devices.allow", "c 136:* rwm") in writes and writes.count(("devices.allow", "c 1:3 rwm")) == 1


def test_empty_resources_write_nothing():
    assert convert.v1_writes({}) == []
    assert convert.v2_writes({}) == []
