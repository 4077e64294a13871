"""IPAM: pure address choice, and the flock'd lease file under real concurrency."""

import ipaddress
import json
import multiprocessing
import os

import pytest

from minibox.errors import Conflict, NotFound, UsageError
from minibox.network import ipam

NET = ipam.parse_subnet("10.213.7.0/24")


def test_parse_subnet_rejects_host_bits_and_tiny_blocks():
    assert ipam.parse_subnet("10.213.0.0/16").prefixlen == 16
    with pytest.raises(UsageError, match="10.213.0.1/16"):
        ipam.parse_subnet("10.213.0.1/16")
    with pytest.raises(UsageError):
        ipam.parse_subnet("10.213.0.0/31")
    with pytest.raises(UsageError):
        ipam.parse_subnet("not-a-subnet")


@pytest.mark.parametrize("text", ["10.88.0.0/16", "172.17.0.0/16", "192.168.1.0/24", "10.0.0.0/8", "0.0.0.0/1",
                                  "10.88.0.1/16", "10.088.0.0/16", "10.88.0/16", "10.88.0.0/33", "10.88.0.0/",
                                  "256.1.1.0/24", "10.88.0.0/1a", "1.2.3.4/30", " 10.88.0.0/16", "10.88.0.0/٣"])
def test_subnet_parsing_agrees_with_the_standard_library(text):
    """ipam parses CIDRs with integers (no ipaddress import on the run path); same verdicts."""
    try:
        expected = ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        expected = None
    try:
        got = ipam.parse_subnet(text)
    except UsageError:
        got = None
    if expected is None or expected.prefixlen > 30:
        assert got is None
    else:
        assert str(got) == str(expected)
        assert ipam.format_address(got.broadcast) == str(expected.broadcast_address)
        assert str(expected.network_address + 1) in got and str(expected.broadcast_address + 1) not in got


def test_gateway_is_first_host_and_never_handed_out():
    assert str(ipam.gateway_of(NET)) == "10.213.7.1"
    assert ipam.pick_address(NET, []) == "10.213.7.2"
    assert ipam.pick_address(NET, ["10.213.7.2", "10.213.7.3"]) == "10.213.7.4"
    # a gap is reused first
    assert ipam.pick_address(NET, ["10.213.7.2", "10.213.7.4"]) == "10.213.7.3"


def test_pool_exhaustion_skips_network_and_broadcast():
    small = ipam.parse_subnet("10.213.8.0/29")  # .0 net, .1 gw, .2-.6 hosts, .7 broadcast
    used = []
    for _ in range(5):
        used.append(ipam.pick_address(small, used))
    assert used == [f"10.213.8.{i}" for i in range(2, 7)]
    with pytest.raises(Conflict, match="no free IP address"):
        ipam.pick_address(small, used)


def test_requested_address_checks():
    assert ipam.pick_address(NET, [], "10.213.7.50") == "10.213.7.50"
    with pytest.raises(Conflict, match="already in use"):
        ipam.pick_address(NET, ["10.213.7.50"], "10.213.7.50")
    for bad in ("10.213.7.0", "10.213.7.1", "10.213.7.255"):
        with pytest.raises(UsageError, match="reserved"):
            ipam.pick_address(NET, [], bad)
    with pytest.raises(UsageError, match="not in subnet"):
        ipam.pick_address(NET, [], "10.213.9.5")
    with pytest.raises(UsageError, match="invalid IP"):
        ipam.pick_address(NET, [], "10.213.7")


def _store(path):
    path.mkdir(mode=0o700, parents=True)
    return ipam.LeaseStore(str(path))


def test_lease_store_needs_its_network_dir(tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        ipam.LeaseStore(str(tmp_path / "gone")).allocate(NET, "a" * 64, lambda c: True)
    assert not (tmp_path / "gone").exists()


def test_lease_store_allocates_releases_and_persists(tmp_path):
    store = _store(tmp_path / "net")
    alive = lambda cid: True
    ip_a, rec = store.allocate(NET, "a" * 64, alive, extra={"name": "a"})
    ip_b, _ = store.allocate(NET, "b" * 64, alive)
    assert (ip_a, ip_b, rec) == ("10.213.7.2", "10.213.7.3", {})
    on_disk = json.loads((tmp_path / "net" / "leases.json").read_text())
    assert on_disk["a" * 64] == {"ip": "10.213.7.2", "name": "a"}
    assert oct(os.stat(tmp_path / "net" / "leases.json").st_mode & 0o777) == "0o600"
    with pytest.raises(Conflict, match="already connected"):
        store.allocate(NET, "a" * 64, alive)
    assert store.release("a" * 64)["ip"] == "10.213.7.2"
    assert store.release("a" * 64) is None
    ip_c, _ = store.allocate(NET, "c" * 64, alive)
    assert ip_c == "10.213.7.2"
    assert not [p for p in os.listdir(tmp_path / "net") if ".tmp." in p]


def test_failed_check_writes_nothing(tmp_path):
    store = _store(tmp_path / "net")

    def check(leases):
        raise Conflict("port is already allocated: 0.0.0.0:80/tcp")

    with pytest.raises(Conflict):
        store.allocate(NET, "a" * 64, lambda c: True, check=check)
    assert store.load() == {}


def test_dead_leases_are_reclaimed_live_ones_kept(tmp_path):
    root = tmp_path
    (root / "containers" / ("a" * 64)).mkdir(parents=True)
    store = _store(root / "network" / "n")
    alive_all = lambda cid: True
    store.allocate(NET, "a" * 64, alive_all)
    store.allocate(NET, "d" * 64, alive_all, extra={"host_veth": "mbxdddddddddddd"})
    ip, reclaimed = store.allocate(NET, "e" * 64, ipam.container_exists(str(root)))
    # d's container dir never existed: its lease (and address) came back
    assert list(reclaimed) == ["d" * 64]
    assert reclaimed["d" * 64]["host_veth"] == "mbxdddddddddddd"
    assert ip == "10.213.7.3"
    # e has no dir either, but a container is never reclaimed by its own allocation
    assert set(store.load()) == {"a" * 64, "e" * 64}
    assert set(store.reclaim(ipam.container_exists(str(root)))) == {"e" * 64}
    assert set(store.load()) == {"a" * 64}


def test_corrupt_lease_file_is_reported(tmp_path):
    d = tmp_path / "net"
    d.mkdir()
    (d / "leases.json").write_text("{not json")
    with pytest.raises(Exception, match="corrupt state file"):
        ipam.LeaseStore(str(d)).load()


def _worker(directory, cid, queue):
    store = ipam.LeaseStore(directory)
    ip, _ = store.allocate(ipam.parse_subnet("10.213.0.0/22"), cid, lambda c: True)
    queue.put(ip)


def test_parallel_processes_get_distinct_addresses(tmp_path):
    directory = str(tmp_path / "net")
    os.mkdir(directory)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(directory, f"{i:064x}", queue)) for i in range(40)]
    for p in procs:
        p.start()
    ips = [queue.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert len(set(ips)) == 40
    leases = ipam.LeaseStore(directory).load()
    assert len(leases) == 40
    assert sorted(lease["ip"] for lease in leases.values()) == sorted(ips)
