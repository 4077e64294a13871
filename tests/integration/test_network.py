"""Bridge networking against the real kernel: bridges, veths, netns, iptables.

Each "container" is a process holding its own network namespace
(``unshare --net sleep``) plus a record dir in a throwaway minibox root.
Networks get unique names, bridge devices and 10.213.x.0/24 subnets; every
test removes what it made, and the leftovers checks look for the test's own
names only (other test runs share the host). Traffic goes to 127.0.0.1 and
to the addresses on the test's own bridges only.
"""

import multiprocessing
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import time
import types

import pytest

from minibox.errors import Conflict, MiniboxError, UsageError
from conftest import minibox_command  # the installed console script, as a user runs it

BUSYBOX = "/bin/busybox"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("unshare", "nsenter", "iptables", "iptables-save", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if not os.path.exists(BUSYBOX):
        return "needs busybox-static"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "needs pyroute2"
    if subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, check=False).returncode != 0:
        return "needs the iptables nat table"
    return None


pytestmark = [pytest.mark.root, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


def _iptables_text() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


class Holder:
    """A process in a fresh netns, standing for a container, with its record dir."""

    def __init__(self, root: str):
        self.proc = subprocess.Popen(["unshare", "--net", "sleep", "300"])
        self.pid = self.proc.pid
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if os.readlink(f"/proc/{self.pid}/ns/net") != own:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.01)
        else:
            raise RuntimeError("unshare --net did not enter a new netns")
        self.id = os.urandom(32).hex()
        self.dir = os.path.join(root, "containers", self.id)
        os.makedirs(self.dir)

    def run(self, *argv, timeout=10):
        return subprocess.run(["nsenter", "-t", str(self.pid), "-n", *argv],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def ping(self, ip: str) -> bool:
        return self.run(BUSYBOX, "ping", "-c1", "-W1", ip).returncode == 0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _args(network, **kw):
    base = {"network": network, "publish": [], "publish_all": False, "ip": None, "name": None,
            "hostname": None, "dns": [], "add_host": []}
    base.update(kw)
    return types.SimpleNamespace(**base)


class World:
    """A throwaway minibox root with its networks, holders and endpoints, all undone at the end."""

    def __init__(self, root: str):
        self.root = root
        self.holders: list[Holder] = []
        self.endpoints: list[tuple[str, dict]] = []
        self.networks: list[str] = []

    def network(self, name=None, predefined=False, device=None):
        """A network on a free 10.213.x.0/24 (other test runs may hold some)."""
        from minibox.network import store

        name = name or f"t{os.urandom(4).hex()}"
        for _ in range(40):
            subnet = f"10.213.{random.randint(10, 250)}.0/24"
            try:
                record = store.create(self.root, name, subnet, device=device, predefined=predefined)
                self.networks.append(name)
                return record
            except Conflict as exc:
                if "overlaps" not in str(exc):
                    raise
        pytest.skip("no free 10.213.x.0/24 subnet on this host")

    def holder(self) -> Holder:
        h = Holder(self.root)
        self.holders.append(h)
        return h

    def connect(self, holder, network, **kw):
        """What ``run`` does: lease before the init exists, then give its netns eth0."""
        from minibox.network import attach, disconnect, reserve

        ep = reserve(self.root, holder.id, _args(network, **kw))
        try:
            attach(ep, holder.pid)
        except BaseException:
            disconnect(self.root, holder.id, ep)  # as the engine's release_runtime does
            raise
        self.endpoints.append((holder.id, ep))
        return ep

    def close(self):
        from minibox.network import disconnect, store

        errors = []
        for cid, ep in reversed(self.endpoints):
            try:
                disconnect(self.root, cid, ep)
            except MiniboxError as exc:
                errors.append(exc)
        for h in self.holders:
            h.kill()
        for name in reversed(self.networks):
            try:
                store.remove(self.root, name, force=True)
            except MiniboxError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def world(tmp_path):
    w = World(str(tmp_path / "root"))
    os.makedirs(w.root, mode=0o700)
    try:
        yield w
    finally:
        w.close()


def test_two_containers_on_a_user_network_reach_each_other(world):
    net = world.network()
    a, b = world.holder(), world.holder()
    ep_a = world.connect(a, net["name"], name="alpha")
    ep_b = world.connect(b, net["name"], name="beta")
    assert ep_a["ip"] != ep_b["ip"]
    assert ep_a["gateway"] == net["gateway"] and ep_a["bridge"] == net["bridge"]
    # inside: eth0 with the address and the MTU of the bridge, lo up, default route
    out = a.run("ip", "-o", "addr", "show", "dev", "eth0").stdout
    assert f"inet {ep_a['ip']}/24" in out
    assert "default via " + net["gateway"] in a.run("ip", "route").stdout
    assert a.run(BUSYBOX, "ping", "-c1", "-W1", "127.0.0.1").returncode == 0
    with open(f"/sys/class/net/{net['bridge']}/mtu") as fh:
        mtu = fh.read().strip()
    assert f"mtu {mtu}" in a.run("ip", "-o", "link", "show", "dev", "eth0").stdout
    assert a.ping(ep_b["ip"]) and b.ping(ep_a["ip"])
    assert a.ping(net["gateway"])
    # by name: each sees the other in its peers for /etc/hosts
    from minibox.network import hosts_entries

    assert hosts_entries(world.root, ep_b) == [(ep_a["ip"], f"alpha {a.id[:12]}")]
    assert hosts_entries(world.root, ep_a) == [(ep_b["ip"], f"beta {b.id[:12]}")]


def test_peer_hosts_files_follow_joins_and_leaves(world):
    from minibox.network import disconnect

    net = world.network()
    a, b = world.holder(), world.holder()
    ep_a = world.connect(a, net["name"], name="alpha")
    gone = net["subnet"].replace(".0/24", ".200")  # a peer line the engine wrote for a peer now gone
    with open(os.path.join(a.dir, "hosts"), "w") as fh:
        fh.write(f"127.0.0.1\tlocalhost\n{gone}\told\n{ep_a['ip']}\talpha\n")
    ep_b = world.connect(b, net["name"], name="beta")
    hosts = os.path.join(a.dir, "hosts")
    with open(hosts) as fh:
        text = fh.read()
    assert text.startswith(f"127.0.0.1\tlocalhost\n{ep_a['ip']}\talpha\n")
    assert f"{ep_b['ip']}\tbeta {b.id[:12]}" in text
    assert gone not in text
    disconnect(world.root, b.id, ep_b)
    with open(hosts) as fh:
        assert "beta" not in fh.read()


def test_default_bridge_network_and_isolation_from_other_networks(world):
    # The predefined "bridge" network, but on the test's own device and subnet.
    device = f"mbt{os.urandom(4).hex()}"
    default = world.network("bridge", predefined=True, device=device)
    other = world.network()
    a, b, c = world.holder(), world.holder(), world.holder()
    ep_a = world.connect(a, "bridge")
    ep_b = world.connect(b, None)  # no --network: the default
    ep_c = world.connect(c, other["name"])
    assert ep_a["bridge"] == ep_b["bridge"] == device
    assert a.ping(ep_b["ip"])
    from minibox.network import hosts_entries

    assert hosts_entries(world.root, ep_a) == []  # no names on the default bridge, as docker
    # c reaches its own gateway but not containers on another network
    assert c.ping(other["gateway"])
    assert not c.ping(ep_a["ip"])
    assert not a.ping(ep_c["ip"])
    with pytest.raises(UsageError, match="user defined networks"):
        world.connect(world.holder(), "bridge", ip=default["gateway"])


def _serve_http(holder: Holder, port: int, body: str, tmp) -> subprocess.Popen:
    www = tmp / f"www{port}"
    www.mkdir()
    (www / "index.html").write_text(body)
    proc = subprocess.Popen(["nsenter", "-t", str(holder.pid), "-n", BUSYBOX, "httpd", "-f", "-p", str(port), "-h", str(www)])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if f":{port:04X} " in holder.run("cat", "/proc/net/tcp", "/proc/net/tcp6").stdout:
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("httpd did not listen")


def _wget(url: str, holder: Holder | None = None) -> str:
    # (this busybox build crashes on wget -T; the subprocess timeout bounds it)
    argv = [BUSYBOX, "wget", "-q", "-O", "-", url]
    proc = holder.run(*argv) if holder else subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return proc.stdout if proc.returncode == 0 else f"<failed: {proc.stderr.strip()}>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_published_port_answers_on_localhost_and_from_another_container(world, tmp_path):
    net = world.network()
    a, b = world.holder(), world.holder()
    port = _free_port()
    ep = world.connect(a, net["name"], publish=[f"{port}:8000"])
    assert ep["ports"] == [{"container_port": 8000, "host_port": port, "host_ip": "0.0.0.0", "proto": "tcp"}]
    world.connect(b, net["name"])
    server = _serve_http(a, 8000, "hello from a\n", tmp_path)
    try:
        assert _wget(f"http://127.0.0.1:{port}/") == "hello from a\n"
        # another container, through the host (its gateway address) and the DNAT
        assert _wget(f"http://{net['gateway']}:{port}/", b) == "hello from a\n"
    finally:
        server.kill()
        server.wait()


def test_random_host_port_and_port_listing(world, tmp_path):
    net = world.network()
    a = world.holder()
    ep = world.connect(a, net["name"], publish=["8000", "127.0.0.1::8001/udp"])
    tcp, udp = ep["ports"]
    assert tcp["host_port"] > 0 and tcp["container_port"] == 8000
    assert udp["proto"] == "udp" and udp["host_ip"] == "127.0.0.1"
    # `minibox port` reads the endpoint from the record
    import json

    with open(os.path.join(a.dir, "container.json"), "w") as fh:
        json.dump({"id": a.id, "name": "web", "network": ep, "state": {"status": "created"}}, fh)
    out = _cli(world.root, "port", a.id[:12])
    assert out.returncode == 0, out.stderr
    assert _cli(world.root, "port", a.id[:12], "8001/udp").stdout == f"127.0.0.1:{udp['host_port']}\n"
    assert _cli(world.root, "port", a.id[:12], "9999").returncode == 125
    assert out.stdout.splitlines() == [f"8000/tcp -> 0.0.0.0:{tcp['host_port']}",
                                       f"8001/udp -> 127.0.0.1:{udp['host_port']}"]


def _assert_nothing_left(world, holder, ip=None):
    from minibox.network import store

    veth = "mbx" + holder.id[:12]
    assert veth not in _links()
    for record in store.list_networks(world.root):
        assert holder.id not in store.leases(world.root, record["name"]).load()
    if ip:
        assert f"{ip}:" not in _iptables_text()


def test_disconnect_removes_veth_rules_and_lease_and_is_idempotent(world):
    from minibox.network import disconnect, store

    net = world.network()
    a = world.holder()
    ep = world.connect(a, net["name"], publish=[f"127.0.0.1:{_free_port()}:80"])
    assert ep["host_veth"] in _links()
    assert f"--to-destination {ep['ip']}:80" in _iptables_text()
    disconnect(world.root, a.id, ep)
    disconnect(world.root, a.id, ep)  # twice: fine
    _assert_nothing_left(world, a, ep["ip"])
    assert "eth0" not in a.run("ip", "-o", "link").stdout
    # removing the network takes its bridge and rules
    store.remove(world.root, net["name"])
    world.networks.remove(net["name"])
    assert net["bridge"] not in _links()
    assert net["bridge"] not in _iptables_text()


def test_port_in_use_is_125_and_leaves_nothing(world):
    net = world.network()
    a = world.holder()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(Conflict, match=f"127.0.0.1:{port}/tcp") as info:
            world.connect(a, net["name"], publish=[f"127.0.0.1:{port}:80"])
    assert info.value.exit_code == 125
    _assert_nothing_left(world, a)
    assert f"--dport {port} " not in _iptables_text()
    assert "eth0" not in a.run("ip", "-o", "link").stdout


def test_port_published_by_another_container_is_refused(world):
    net = world.network()
    a, b = world.holder(), world.holder()
    port = _free_port()
    world.connect(a, net["name"], publish=[f"{port}:80"])
    with pytest.raises(Conflict, match=f"0.0.0.0:{port}/tcp"):
        world.connect(b, net["name"], publish=[f"{port}:80"])
    _assert_nothing_left(world, b)


def test_malformed_publish_and_unknown_network_leave_nothing(world):
    net = world.network()
    a = world.holder()
    with pytest.raises(UsageError, match="8080:80/sctp") as info:
        world.connect(a, net["name"], publish=["8080:80/sctp"])
    assert info.value.exit_code == 125
    from minibox.errors import NotFound

    with pytest.raises(NotFound, match="network nosuchnet not found"):
        world.connect(a, "nosuchnet")
    _assert_nothing_left(world, a)


def test_setup_failure_half_way_rolls_back(world):
    # eth0 is taken inside the netns, so the veth fails after the lease and
    # the port rule were made: everything done is undone.
    net = world.network()
    a = world.holder()
    made = a.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
    assert made.returncode == 0, made.stderr
    with pytest.raises(MiniboxError):
        world.connect(a, net["name"], publish=[f"{_free_port()}:80"])
    _assert_nothing_left(world, a)
    assert f"--to-destination {net['subnet'].rsplit('.', 1)[0]}." not in _iptables_text()


def test_subnet_overlapping_a_host_route_is_refused(world, tmp_path):
    from minibox.network import store

    net = world.network()
    other_root = str(tmp_path / "other")
    with pytest.raises(Conflict, match="overlaps the host route"):
        store.create(other_root, "clash", net["subnet"])
    assert not os.path.exists(os.path.join(other_root, "network", "clash"))
    with pytest.raises(Conflict, match="overlaps subnet"):
        store.create(world.root, "clash", net["subnet"].replace(".0/24", ".128/25"))


def test_network_rm_refused_while_in_use(world):
    from minibox.network import disconnect, store

    net = world.network()
    a = world.holder()
    ep = world.connect(a, net["name"])
    with pytest.raises(Conflict, match="active endpoints"):
        store.remove(world.root, net["name"])
    assert net["bridge"] in _links()
    disconnect(world.root, a.id, ep)
    world.endpoints.clear()
    store.remove(world.root, net["name"])
    world.networks.remove(net["name"])


def test_stale_leftovers_of_a_vanished_container_are_pruned(world):
    from minibox.network import prune_stale, store

    net = world.network()
    a, b = world.holder(), world.holder()
    port = _free_port()
    ep = world.connect(a, net["name"], publish=[f"{port}:80"])
    world.connect(b, net["name"])
    # a's runtime was SIGKILLed and its record removed; its netns is still held
    # (a process escaped), so its veth is still there too.
    shutil.rmtree(a.dir)
    world.endpoints = [e for e in world.endpoints if e[0] != a.id]
    assert prune_stale(world.root) == [a.id]
    _assert_nothing_left(world, a, ep["ip"])
    assert b.id in store.leases(world.root, net["name"]).load()  # the live one stays


def _connect_in_child(root, network, cid, pid, queue):
    from minibox.network import attach, reserve

    try:
        ep = reserve(root, cid, _args(network))
        attach(ep, pid)
        queue.put((cid, ep))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put((cid, repr(exc)))


def test_concurrent_connects_get_distinct_addresses(world):
    from minibox.network import disconnect, store

    net = world.network()
    holders = [world.holder() for _ in range(50)]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_connect_in_child, args=(world.root, net["name"], h.id, h.pid, queue))
             for h in holders]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    failures = {cid: r for cid, r in results.items() if not isinstance(r, dict)}
    world.endpoints.extend((cid, ep) for cid, ep in results.items() if isinstance(ep, dict))
    assert not failures
    ips = [ep["ip"] for ep in results.values()]
    assert len(set(ips)) == 50
    assert holders[0].ping(results[holders[-1].id]["ip"])
    for cid, ep in results.items():
        disconnect(world.root, cid, ep)
    world.endpoints.clear()
    assert store.leases(world.root, net["name"]).load() == {}
    assert not [h for h in holders if "mbx" + h.id[:12] in _links()]


def _cli(root, *argv):
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.run([*minibox_command(), "--root", root, *argv],
                          capture_output=True, text=True, cwd=here, check=False)


def test_network_verbs(world):
    import json

    name = f"t{os.urandom(4).hex()}"
    for _ in range(20):
        subnet = f"10.213.{random.randint(10, 250)}.0/24"
        created = _cli(world.root, "network", "create", "--subnet", subnet, name)
        if created.returncode == 0:
            break
    assert created.returncode == 0, created.stderr
    world.networks.append(name)
    assert len(created.stdout.strip()) == 64
    again = _cli(world.root, "network", "create", "--subnet", subnet, name)
    assert again.returncode == 125 and "already exists" in again.stderr
    bad = _cli(world.root, "network", "create", "--subnet", "10.213.1.1/24", "x" + name)
    assert bad.returncode == 125 and "invalid subnet" in bad.stderr
    ls = _cli(world.root, "network", "ls")
    assert name in ls.stdout and subnet in ls.stdout
    info = json.loads(_cli(world.root, "network", "inspect", name).stdout)
    assert info[0]["IPAM"]["Config"][0] == {"Subnet": subnet, "Gateway": subnet.replace(".0/24", ".1")}
    missing = _cli(world.root, "network", "rm", "nosuch")
    assert missing.returncode == 125 and "network nosuch not found" in missing.stderr
    builtin = _cli(world.root, "network", "rm", "bridge")
    assert builtin.returncode == 125
    removed = _cli(world.root, "network", "rm", name)
    assert removed.returncode == 0, removed.stderr
    world.networks.remove(name)
    assert name not in _cli(world.root, "network", "ls").stdout


def test_default_bridge_follows_the_daemon_level_overrides(world, monkeypatch):
    from minibox.network import store

    device = f"mbt{os.urandom(4).hex()}"
    for _ in range(20):
        subnet = f"10.213.{random.randint(10, 250)}.0/24"
        monkeypatch.setenv("MINIBOX_BRIDGE", device)
        monkeypatch.setenv("MINIBOX_BRIDGE_SUBNET", subnet)
        try:
            ep = world.connect(world.holder(), None)
            break
        except Conflict as exc:
            if "overlaps" not in str(exc):
                raise
    else:
        pytest.skip("no free 10.213.x.0/24 subnet")
    assert (ep["network"], ep["bridge"], ep["subnet"]) == ("bridge", device, subnet)
    from minibox.network import disconnect

    disconnect(world.root, world.holders[-1].id, ep)
    world.endpoints.clear()
    store.remove_default(world.root)
    store.remove_default(world.root)  # nothing left: fine
    assert device not in _links()
    assert device not in _iptables_text()


def test_publish_all_fixed_ip_and_udp(world):
    net = world.network()
    a = world.holder()
    fixed = net["subnet"].replace(".0/24", ".77")
    ep = world.connect(a, net["name"], ip=fixed, publish_all=True,
                       exposed_ports={"5353/udp": {}, "8000/tcp": {}})
    assert ep["ip"] == fixed
    assert f"inet {fixed}/24" in a.run("ip", "-o", "addr", "show", "dev", "eth0").stdout
    by_port = {(p["container_port"], p["proto"]): p["host_port"] for p in ep["ports"]}
    assert set(by_port) == {(5353, "udp"), (8000, "tcp")}
    # a UDP datagram to the published port on 127.0.0.1 arrives inside
    # (busybox nc has no -u here: a tiny Python receiver in the netns)
    receiver = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                "s.bind(('0.0.0.0', 5353)); print('ready', flush=True); "
                "print(s.recv(100).decode(), end='', flush=True)")
    server = subprocess.Popen(["nsenter", "-t", str(a.pid), "-n", sys.executable, "-c", receiver],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline() == "ready\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"ping-udp\n", ("127.0.0.1", by_port[(5353, "udp")]))
        ready, _, _ = select.select([server.stdout], [], [], 5)
        assert ready and server.stdout.readline() == "ping-udp\n"
    finally:
        server.kill()
        server.wait()
    # the same fixed address twice is a conflict, and leaves nothing
    b = world.holder()
    with pytest.raises(Conflict, match="already in use"):
        world.connect(b, net["name"], ip=fixed)
    assert "mbx" + b.id[:12] not in _links()
