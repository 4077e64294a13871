"""docker stats arithmetic and formatting; update's merge and HostConfig fields."""

from minibox.cgroups import flags, usage
from minibox.cgroups.usage import Sample


def test_docker_byte_formats():
    assert usage.bytes_binary(0) == "0B"
    assert usage.bytes_binary(1536 * 1024) == "1.5MiB"
    assert usage.bytes_binary(100 << 20) == "100MiB"
    assert usage.bytes_binary(8192 * 1024 * 1024 - 1) == "8GiB"
    assert usage.bytes_decimal(0) == "0B"
    assert usage.bytes_decimal(1050) == "1.05kB"
    assert usage.bytes_decimal(12_345_678) == "12.3MB"


def test_net_dev_skips_loopback():
    text = ("Inter-|   Receive   |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n"
            "    lo:  500 5 0 0 0 0 0 0  500 5 0 0 0 0 0 0\n"
            "  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n")
    assert usage.net_dev(text) == (1000, 2000)


def test_row_cpu_is_time_over_wall_and_memory_excludes_inactive_cache():
    prev = Sample(t=10.0, cpu_ns=1_000_000_000)
    cur = Sample(t=12.0, cpu_ns=2_000_000_000, mem_usage=60 << 20, mem_inactive_file=10 << 20,
                 mem_limit=100 << 20, pids=3, net_rx=1050, net_tx=0, io_read=0, io_write=4096)
    row = usage.row("abc", "web", prev, cur, host_mem=8 << 30)
    assert row == ("abc", "web", "50.00%", "50MiB / 100MiB", "50.00%", "1.05kB / 0B", "0B / 4.1kB", "3")


def test_unlimited_memory_shows_the_hosts_memory():
    cur = Sample(t=1.0, mem_usage=1 << 20, mem_limit=-1)
    assert usage.row("a", "b", None, cur, host_mem=4 << 30)[3:5] == ("1MiB / 4GiB", "0.02%")


def test_stopped_container_row_is_zeros():
    assert usage.row("a", "b", None, None, 1)[2:] == ("0.00%", "0B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0")


def test_table_pads_like_docker_tabwriter():
    lines = usage.table([("abc", "n", "0.00%", "1MiB / 2MiB", "50.00%", "0B / 0B", "0B / 0B", "1")]).splitlines()
    assert lines[0].startswith("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %")
    assert lines[0].endswith("PIDS") and lines[1].endswith("1")
    assert lines[0].index("NAME") == lines[1].index("n")


def test_merge_keeps_untouched_sections_and_keys():
    old = {"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 5}}
    new = {"memory": {"limit": 3}, "cpu": {"shares": 10}}
    assert flags.merge(old, new) == {"memory": {"limit": 3, "swap": 2}, "pids": {"limit": 5}, "cpu": {"shares": 10}}
    assert old["memory"]["limit"] == 1


def test_host_config_fields():
    hc = flags.host_config({"memory": {"limit": 64, "swap": 128}, "cpu": {"quota": 50000, "period": 100000},
                            "pids": {"limit": 20}})
    assert hc == {"Memory": 64, "MemorySwap": 128, "CpuQuota": 50000, "CpuPeriod": 100000, "PidsLimit": 20,
                  "NanoCpus": 500_000_000}
