"""`minibox run` on bridge networks, end to end through the CLI and the engine.

Every test gets its own root whose predefined ``bridge`` network is moved to
a device and a 10.213.x.0/24 subnet of its own, so nothing here touches
minibox0 or 10.88.0.0/16 that other runs on this host may be using. Traffic
goes to 127.0.0.1 and to the test's own bridges only.
"""

import concurrent.futures
import os
import random
import shutil
import socket
import subprocess

import pytest

BUSYBOX = "/bin/busybox"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    with open("/proc/filesystems") as fh:
        if "overlay" not in fh.read():
            return "needs overlayfs"
    if not os.path.exists(BUSYBOX):
        return "needs busybox-static"
    if shutil.which("iptables-restore") is None:
        return "needs iptables"
    return None


# (conftest's requires() is not importable under pytest's default rootdir import mode)
pytestmark = [pytest.mark.root, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def _iptables() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


def _wget(url: str) -> str:
    # busybox wget -T crashes in this build; the subprocess timeout bounds it instead
    proc = subprocess.run([BUSYBOX, "wget", "-qO-", url], capture_output=True, text=True, timeout=10, check=False)
    return proc.stdout if proc.returncode == 0 else f"<wget failed {proc.returncode}>"


def _create_network(root, name, predefined=False, device=None):
    from minibox.errors import Conflict
    from minibox.network import store

    for _ in range(40):
        try:
            return store.create(root, name, f"10.213.{random.randint(10, 250)}.0/24", device=device,
                                predefined=predefined)
        except Conflict as exc:
            if "overlaps" not in str(exc):
                raise
    pytest.skip("no free 10.213.x.0/24 subnet")


@pytest.fixture
def net_mb(fresh_mb):
    """A fresh root with busybox; conftest gave it a default bridge of its own and removes it."""
    from minibox.network import store

    fresh_mb.default = store.load(fresh_mb.root, "bridge")
    assert fresh_mb.default["bridge"].startswith("mbt")  # never the host's minibox0
    fresh_mb.extra_networks = []
    yield fresh_mb
    ids = fresh_mb("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        fresh_mb("rm", "-f", *ids)
    for name in fresh_mb.extra_networks:
        store.remove(fresh_mb.root, name, force=True)


def _ip_of(mb, ref) -> str:
    return mb("inspect", "-f", "{{.NetworkSettings.IPAddress}}", ref, check=True).stdout.strip()


def _www(tmp_path, text):
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text(text)
    return str(www)


def test_published_port_serves_a_file_on_localhost(net_mb, tmp_path):
    mb = net_mb
    port = _free_port()
    www = _www(tmp_path, "hello from minibox\n")
    cid = mb("run", "-d", "-p", f"{port}:80", "-v", f"{www}:/var/www:ro",
             "busybox", "httpd", "-f", "-p", "80", "-h", "/var/www", check=True).stdout.strip()
    for _ in range(50):
        body = _wget(f"http://127.0.0.1:{port}/")
        if body == "hello from minibox\n":
            break
        subprocess.run(["sleep", "0.1"], check=True)
    assert body == "hello from minibox\n"
    assert mb("port", cid, check=True).stdout == f"80/tcp -> 0.0.0.0:{port}\n"
    ip = _ip_of(mb, cid)
    assert ip.startswith(mb.default["subnet"].rsplit(".", 1)[0] + ".")
    # from another container: directly, and through the published port on the host
    r = mb("run", "--rm", "busybox", "wget", "-qO-", f"http://{ip}/")
    assert r.stdout == "hello from minibox\n", r.stderr
    r = mb("run", "--rm", "busybox", "wget", "-qO-", f"http://{mb.default['gateway']}:{port}/")
    assert r.stdout == "hello from minibox\n", r.stderr
    # inside: eth0 with its address, a default route, and /etc/hosts naming it
    r = mb("exec", cid, "sh", "-c", "ip -o addr show eth0; ip route; cat /etc/hosts")
    assert f"inet {ip}/24" in r.stdout and f"default via {mb.default['gateway']}" in r.stdout
    assert f"{ip}\t{cid[:12]}" in r.stdout
    veth = "mbx" + cid[:12]
    assert veth in _links()
    mb("rm", "-f", cid, check=True)
    assert veth not in _links()
    assert f"{ip}:80" not in _iptables()
    from minibox.network import store

    assert store.leases(mb.root, "bridge").load() == {}


def test_user_network_names_and_isolation(net_mb):
    mb = net_mb
    name = f"t{os.urandom(4).hex()}"
    net = _create_network(mb.root, name)
    mb.extra_networks.append(name)
    mb("run", "-d", "--network", name, "--name", f"{name}-a", "busybox", "sleep", "60", check=True)
    mb("run", "-d", "--network", name, "--name", f"{name}-b", "busybox", "sleep", "60", check=True)
    # b was written knowing a; a learns of b when b joins
    r = mb("exec", f"{name}-b", "ping", "-c1", "-W2", f"{name}-a")
    assert r.returncode == 0, r.stdout + r.stderr
    r = mb("exec", f"{name}-a", "ping", "-c1", "-W2", f"{name}-b")
    assert r.returncode == 0, r.stdout + r.stderr
    ip_a = _ip_of(mb, f"{name}-a")
    assert ip_a.startswith(net["subnet"].rsplit(".", 1)[0] + ".")
    # a container on the default bridge cannot reach them
    r = mb("run", "--rm", "busybox", "ping", "-c1", "-W1", ip_a)
    assert r.returncode != 0
    # network rm is refused while in use, and works after
    r = mb("network", "rm", name)
    assert r.returncode == 125 and "active endpoints" in r.stderr
    mb("rm", "-f", f"{name}-a", f"{name}-b", check=True)
    mb("network", "rm", name, check=True)
    mb.extra_networks.remove(name)
    assert net["bridge"] not in _links()


def test_bad_input_is_125_and_leaves_nothing(net_mb):
    mb = net_mb
    from minibox.network import store

    r = mb("run", "--rm", "-p", "80:80:80:80", "busybox", "true")
    assert r.returncode == 125 and "published port" in r.stderr
    r = mb("run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert r.returncode == 125 and "nosuchnet" in r.stderr
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        r = mb("run", "--rm", "-p", f"{port}:80", "busybox", "true")
    assert r.returncode == 125 and f"{port}" in r.stderr
    assert store.leases(mb.root, "bridge").load() == {}
    assert f"--dport {port} " not in _iptables()
    assert "mbx" not in "".join(line for line in _links().splitlines() if mb.default["bridge"] in line)
    assert mb("ps", "-q").stdout.strip() == ""


def test_fifty_concurrent_runs_get_fifty_addresses(net_mb):
    mb = net_mb

    def start(_):
        return mb("run", "-d", "busybox", "sleep", "120", timeout=120)

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(start, range(50)))
    failed = [r.stderr for r in results if r.returncode != 0]
    assert not failed, failed[:3]
    ids = [r.stdout.strip() for r in results]
    ips = [_ip_of(mb, cid) for cid in ids]
    assert len(set(ips)) == 50
    mb("rm", "-f", *ids, check=True, timeout=300)
    from minibox.network import store

    assert store.leases(mb.root, "bridge").load() == {}
    assert not [cid for cid in ids if "mbx" + cid[:12] in _links()]
    assert not [ip for ip in ips if ip in _iptables()]


def test_sigkilled_runtime_leaves_nothing_after_rm_f(net_mb):
    import json
    import signal
    import time

    mb = net_mb
    port = _free_port()
    cid = mb("run", "-d", "-p", f"{port}:80", "busybox", "sleep", "120", check=True).stdout.strip()
    with open(os.path.join(mb.root, "containers", cid, "container.json")) as fh:
        state = json.load(fh)["state"]
    os.kill(state["monitor_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{state['pid']}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"--dport {port} " in _iptables()  # nothing ran the teardown yet
    mb("rm", "-f", cid, check=True)
    from minibox.network import store

    assert store.leases(mb.root, "bridge").load() == {}
    assert f"--dport {port} " not in _iptables()
    assert "mbx" + cid[:12] not in _links()
