"""The labs of docs/labs/, run under docker and under minibox, compared as a student would.

Each test runs the same command line under a private dockerd (see dockerd.py)
and under minibox (the ``mb`` fixture of tests/conftest.py), extracts the
fact the lab asks the student to observe (an exit code, PID 1, the process
count, the hostname, the interfaces, a cgroup file, OOMKilled, shared lower
layers, which build steps were CACHED, which files reached the image ...)
and asserts that both sides show the same fact, and that it is the fact the
lab promises. Output is never compared byte for byte.

Skips, with the reason, when dockerd is not installed or cannot start.
"""

import json
import os
import re
import socket
import tempfile
import time
import urllib.request
import uuid

import pytest
from dockerd import Dockerd, why_unavailable

from conftest import _ensure_busybox_tar, requires

pytestmark = requires("root", "overlay", "busybox")


@pytest.fixture(scope="module")
def docker():
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    d = Dockerd()
    try:
        reason = d.start()
        if reason:
            pytest.skip(f"cannot start a private dockerd: {reason}")
        d("import", "-c", 'CMD ["sh"]', str(_ensure_busybox_tar()), "busybox:latest", check=True)
        yield d
    finally:
        d.stop()


@pytest.fixture
def both(docker, mb):
    """[("docker", runner), ("minibox", runner)]; each runner takes docker's CLI arguments."""
    created = {"docker": [], "minibox": []}
    sides = [("docker", docker), ("minibox", mb)]
    yield sides, created
    for (side, run) in sides:
        if created[side]:
            run("rm", "-f", *created[side])


def unique(prefix="p"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def inspect(run, name) -> dict:
    r = run("inspect", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def same(facts: dict, expected=None):
    """Both sides saw the same fact (and, if given, the one the lab promises)."""
    assert facts["docker"] == facts["minibox"], f"docker and minibox differ: {facts}"
    if expected is not None:
        assert facts["docker"] == expected, f"both differ from what the lab says ({expected!r}): {facts}"


def wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


# ------------------------------------------------------ lab 1: process + isolation


@pytest.mark.parametrize("argv,code", [
    (["sh", "-c", "exit 3"], 3),
    (["true"], 0),
    (["/nonexistent"], 127),
    (["/etc"], 126),
])
def test_lab1_exit_codes(both, argv, code):
    sides, _ = both
    same({side: run("run", "--rm", "--network", "none", "busybox", *argv).returncode
          for side, run in sides}, code)


def test_lab1_bad_flag_is_125(both):
    sides, _ = both
    same({side: run("run", "--bogus", "busybox", "true").returncode for side, run in sides}, 125)


def test_lab1_a_container_is_a_host_process_in_other_namespaces(both):
    sides, created = both
    facts = {}
    for side, run in sides:
        name = unique()
        r = run("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "300")
        assert r.returncode == 0, r.stderr
        created[side].append(name)
        pid = inspect(run, name)["State"]["Pid"]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")[:2]
        other_ns = {ns: os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
                    for ns in ("pid", "mnt", "uts", "ipc", "net")}
        facts[side] = (cmdline, other_ns)
    same(facts, ([b"sleep", b"300"], {"pid": True, "mnt": True, "uts": True, "ipc": True, "net": True}))


# ------------------------------------------------------ lab 2: namespaces


def test_lab2_ps_shows_only_the_container(both):
    sides, _ = both
    facts = {}
    for side, run in sides:
        r = run("run", "--rm", "busybox", "sh", "-c", "ps -o pid,comm; true")
        assert r.returncode == 0, r.stderr
        rows = [line.split() for line in r.stdout.strip().splitlines()[1:]]
        facts[side] = (rows[0], len(rows))
    same(facts, (["1", "sh"], 2))


def test_lab2_hostname_is_the_short_id_not_the_hosts(both):
    sides, created = both
    facts = {}
    for side, run in sides:
        name = unique()
        r = run("run", "--name", name, "busybox", "hostname")
        created[side].append(name)
        assert r.returncode == 0, r.stderr
        short = inspect(run, name)["Id"][:12]
        facts[side] = (r.stdout.strip() == short, r.stdout.strip() != os.uname().nodename)
    same(facts, (True, True))


@pytest.mark.parametrize("network,interfaces", [("bridge", ["eth0", "lo"]), ("none", ["lo"])])
def test_lab2_interfaces(both, network, interfaces):
    sides, _ = both
    facts = {}
    for side, run in sides:
        r = run("run", "--rm", "--network", network, "busybox", "ip", "-o", "link")
        assert r.returncode == 0, r.stderr
        facts[side] = sorted(line.split(":")[1].strip().split("@")[0] for line in r.stdout.splitlines())
    same(facts, interfaces)


# ------------------------------------------------------ lab 3: cgroups


CGROUP_FILES = {
    # flag values -> the file a student cats inside the container (v1 path || v2 path)
    "memory": (["-m", "100m"], "memory/memory.limit_in_bytes", "memory.max", "104857600"),
    "pids": (["--pids-limit", "64"], "pids/pids.max", "pids.max", "64"),
    "cpu": (["--cpus", "0.5"], "cpu/cpu.cfs_quota_us", "cpu.max", "50000"),
}


@pytest.mark.parametrize("kind", sorted(CGROUP_FILES))
def test_lab3_limits_are_in_the_containers_cgroup_files(both, kind):
    flags, v1, v2, expected = CGROUP_FILES[kind]
    sides, _ = both
    facts = {}
    for side, run in sides:
        r = run("run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c",
                f"cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}")
        assert r.returncode == 0, f"{side}: {r.stderr}"
        facts[side] = r.stdout.split()[0]
    same(facts, expected)


def test_lab3_echo_hello_under_100m(both):
    sides, _ = both
    same({side: (lambda r: (r.returncode, r.stdout))(
        run("run", "--rm", "-m", "100m", "busybox", "sh", "-c", "echo hello")) for side, run in sides},
        (0, "hello\n"))


def test_lab3_over_the_limit_the_kernel_kills_it_and_inspect_says_oomkilled(both):
    sides, created = both
    facts = {}
    for side, run in sides:
        name = unique()
        r = run("run", "--name", name, "--network", "none", "-m", "20m", "--memory-swap", "20m",
                "busybox", "tail", "/dev/zero")
        created[side].append(name)
        state = inspect(run, name)["State"]
        facts[side] = (r.returncode, state["ExitCode"], state["OOMKilled"])
    same(facts, (137, 137, True))


# ------------------------------------------------------ lab 4: layers and copy-on-write


def _lower_layers(data: dict) -> list[str]:
    """The image's read-only layer dirs (docker adds a per-container "-init" layer: not the image)."""
    return [d for d in data["LowerDir"].split(":") if not d.rstrip("/").endswith("-init/diff")]


def test_lab4_two_containers_share_the_image_layers_but_not_their_writes(both):
    sides, created = both
    facts = {}
    for side, run in sides:
        a, b = unique("a"), unique("b")
        created[side] += [a, b]
        assert run("run", "-d", "--name", a, "--network", "none", "busybox", "sh", "-c",
                   "echo hi > /hello.txt; sleep 300").returncode == 0
        assert run("run", "-d", "--name", b, "--network", "none", "busybox", "sleep", "300").returncode == 0
        assert wait_until(lambda run=run, a=a: run("exec", a, "test", "-f", "/hello.txt").returncode == 0)
        ga, gb = inspect(run, a)["GraphDriver"], inspect(run, b)["GraphDriver"]
        lowers_a, lowers_b = _lower_layers(ga["Data"]), _lower_layers(gb["Data"])
        diff = run("diff", a).stdout.split("\n")
        facts[side] = {
            "driver": ga["Name"],
            "same lower dirs": lowers_a == lowers_b and len(lowers_a) >= 1,
            "own upper dirs": ga["Data"]["UpperDir"] != gb["Data"]["UpperDir"],
            "b sees a's file": run("exec", b, "cat", "/hello.txt").returncode == 0,
            "diff": "A /hello.txt" in diff,
        }
        # After rm, the write is gone: a new container of the image does not have it.
        assert run("rm", "-f", a).returncode == 0
        facts[side]["after rm"] = run("run", "--rm", "--network", "none", "busybox", "cat",
                                      "/hello.txt").returncode
    same(facts, {"driver": "overlay2", "same lower dirs": True, "own upper dirs": True,
                 "b sees a's file": False, "diff": True, "after rm": 1})


def test_lab4_commit_adds_one_layer_to_history(both):
    sides, created = both
    facts = {}
    for side, run in sides:
        name, image = unique(), unique("img")
        created[side].append(name)
        assert run("run", "--name", name, "--network", "none", "busybox", "sh", "-c",
                   "echo hi > /hello.txt").returncode == 0
        assert run("commit", name, image).returncode == 0
        base = run("history", "-q", "busybox").stdout.split()
        mine = run("history", "-q", image).stdout.split()
        out = run("run", "--rm", "--network", "none", image, "cat", "/hello.txt").stdout
        run("rmi", image)
        facts[side] = (len(mine) - len(base), out)
    same(facts, (1, "hi\n"))


# ------------------------------------------------------ lab 5: the storage driver


def _info_lines(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key in ("Storage Driver", "Cgroup Driver", "Cgroup Version"):
            out[key] = value.strip()
    return out


def test_lab5_info_names_overlay2_and_the_cgroup_setup(both):
    sides, _ = both
    facts = {side: _info_lines(run("info").stdout) for side, run in sides}
    same(facts)
    assert facts["minibox"]["Storage Driver"] == "overlay2"
    assert set(facts["minibox"]) == {"Storage Driver", "Cgroup Driver", "Cgroup Version"}


# ------------------------------------------------------ lab 6 and 7: builds and .dockerignore


_SIZE = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}


def build_steps(progress: str) -> dict[str, str]:
    """``--progress plain`` output -> {"[2/3] RUN ...": "CACHED" | "DONE"} for the Dockerfile's steps."""
    labels, status = {}, {}
    for line in progress.splitlines():
        m = re.match(r"#(\d+) (\[\d+/\d+\] .*)$", line)
        if m:
            labels[m[1]] = re.sub(r"\s+", " ", m[2].replace("docker.io/library/", "")).strip()
        m = re.match(r"#(\d+) (CACHED|DONE)\b", line)
        if m:
            status[m[1]] = m[2]
    return {label: status.get(n) for n, label in labels.items() if not label.startswith("[1/")}


def context_bytes(progress: str) -> int:
    """The build context size the client says it sent (the largest "transferring context")."""
    sizes = [float(n) * _SIZE[u] for n, u in re.findall(r"transferring context: ([\d.]+)([kKMG]?B)", progress)]
    return int(max(sizes, default=-1))


def build(run, ctx: str, tag: str) -> str:
    r = run("build", "--progress", "plain", "-t", tag, ctx, timeout=180)
    assert r.returncode == 0, f"build failed:\n{r.stdout}\n{r.stderr}"
    return r.stderr + r.stdout


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def context_dir():
    with tempfile.TemporaryDirectory(prefix="mbp-ctx-", dir="/var/tmp") as d:
        yield d


@pytest.mark.parametrize("order", ["copy-then-install", "install-then-copy"])
def test_lab6_layer_order_decides_what_a_source_change_rebuilds(both, context_dir, order):
    steps = ["COPY app.txt /app/", "RUN echo installing && echo deps > /deps"]
    if order == "install-then-copy":
        steps.reverse()
    sides, _ = both
    facts = {}
    for side, run in sides:
        ctx = os.path.join(context_dir, side)
        os.mkdir(ctx)
        write(os.path.join(ctx, "Dockerfile"), "FROM busybox\n" + "\n".join(steps) + "\n")
        write(os.path.join(ctx, "app.txt"), "v1\n")
        tag = unique("order")
        first = build_steps(build(run, ctx, tag))
        unchanged = build_steps(build(run, ctx, tag))
        write(os.path.join(ctx, "app.txt"), "v2\n")
        changed = build_steps(build(run, ctx, tag))
        content = run("run", "--rm", "--network", "none", tag, "cat", "/app/app.txt").stdout
        run("rmi", tag)
        facts[side] = (set(first.values()), unchanged, changed, content)
    same(facts)
    first, unchanged, changed, content = facts["minibox"]
    assert set(unchanged.values()) == {"CACHED"}  # nothing changed: every step from the cache
    assert content == "v2\n"
    run_step = next(label for label in changed if "RUN" in label)
    # Installing after copying re-runs the install on every source change; before, it stays cached.
    assert changed[run_step] == ("DONE" if order == "copy-then-install" else "CACHED")


def test_lab6_build_reports_the_context_size_it_sends(both, context_dir):
    sides, _ = both
    facts = {}
    for side, run in sides:
        ctx = os.path.join(context_dir, side)
        os.mkdir(ctx)
        write(os.path.join(ctx, "Dockerfile"), "FROM busybox\nCOPY big.bin /\n")
        with open(os.path.join(ctx, "big.bin"), "wb") as f:
            f.write(os.urandom(3 * 1000 * 1000))
        tag = unique("ctx")
        sent = context_bytes(build(run, ctx, tag))
        run("rmi", tag)
        facts[side] = 3_000_000 <= sent < 3_200_000
    same(facts, True)


def test_lab7_dockerignore_keeps_files_out_of_the_context_and_the_image(both, context_dir):
    sides, _ = both
    facts = {}
    for side, run in sides:
        ctx = os.path.join(context_dir, side)
        os.makedirs(os.path.join(ctx, "node_modules", "dep"))
        write(os.path.join(ctx, "Dockerfile"), "FROM busybox\nCOPY . /ctx\n")
        write(os.path.join(ctx, ".dockerignore"), "secret.txt\nnode_modules\n*.log\n")
        write(os.path.join(ctx, "secret.txt"), "password\n")
        write(os.path.join(ctx, "debug.log"), "noise\n")
        write(os.path.join(ctx, "app.txt"), "app\n")
        with open(os.path.join(ctx, "node_modules", "dep", "blob.bin"), "wb") as f:
            f.write(os.urandom(2 * 1000 * 1000))
        tag = unique("ign")
        sent = context_bytes(build(run, ctx, tag))
        listing = run("run", "--rm", "--network", "none", tag, "ls", "-a", "/ctx").stdout.split()
        run("rmi", tag)
        facts[side] = (sorted(set(listing) - {".", ".."}), sent < 100_000)
    same(facts, ([".dockerignore", "Dockerfile", "app.txt"], True))


# ------------------------------------------------------ lab 8: why internals matter


def _is_sleep(pid: int) -> bool:
    """Is ``pid`` (still) a sleep process? False once it has exited and been reaped."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().startswith(b"sleep")
    except OSError:
        return False


def test_lab8_a_container_stops_when_its_process_stops(both):
    sides, created = both
    facts = {}
    for side, run in sides:
        name = unique()
        created[side].append(name)
        assert run("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "1").returncode == 0
        pid = inspect(run, name)["State"]["Pid"]
        assert wait_until(lambda run=run, name=name: inspect(run, name)["State"]["Status"] == "exited")
        state = inspect(run, name)["State"]
        facts[side] = (state["Status"], state["ExitCode"], _is_sleep(pid))
    same(facts, ("exited", 0, False))


def test_lab8_writes_survive_rm_only_in_a_volume(both):
    sides, _ = both
    facts = {}
    for side, run in sides:
        vol = unique("vol")
        try:
            assert run("run", "--rm", "--network", "none", "-v", f"{vol}:/data", "busybox", "sh", "-c",
                       "echo kept > /data/f").returncode == 0
            kept = run("run", "--rm", "--network", "none", "-v", f"{vol}:/data", "busybox",
                       "cat", "/data/f").stdout
            assert run("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                       "mkdir -p /data && echo lost > /data/f").returncode == 0
            lost = run("run", "--rm", "--network", "none", "busybox", "cat", "/data/f").returncode
        finally:
            run("volume", "rm", vol)
        facts[side] = (kept, lost)
    same(facts, ("kept\n", 1))


def test_lab8_each_container_has_its_own_address_and_they_reach_each_other(both):
    sides, created = both
    facts = {}
    for side, run in sides:
        a, b = unique("a"), unique("b")
        created[side] += [a, b]
        for name in (a, b):
            assert run("run", "-d", "--name", name, "busybox", "sleep", "300").returncode == 0
        ip_a = inspect(run, a)["NetworkSettings"]["IPAddress"]
        ip_b = inspect(run, b)["NetworkSettings"]["IPAddress"]
        ping = run("exec", a, "ping", "-c", "1", "-W", "3", ip_b).returncode
        facts[side] = (bool(ip_a) and bool(ip_b) and ip_a != ip_b, ping)
    same(facts, (True, 0))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab8_a_published_port_reaches_the_server_inside(both):
    sides, created = both
    facts = {}
    for side, run in sides:
        name, port = unique("web"), _free_port()
        created[side].append(name)
        r = run("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", "busybox",
                "httpd", "-f", "-p", "80", "-h", "/var/www")
        assert r.returncode == 0, r.stderr
        body = None

        def fetch(port=port):
            nonlocal body
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                return True
            except OSError:
                return False

        wait_until(fetch, 10)
        facts[side] = body
    same(facts, b"minibox busybox image\n")


def test_lab8_pids_limit_holds_under_a_fork_loop(both):
    sides, _ = both
    facts = {}
    for side, run in sides:
        r = run("run", "--rm", "--network", "none", "--pids-limit", "10", "busybox", "sh", "-c",
                "for i in $(seq 30); do sleep 3 & done; wait; true")
        facts[side] = "can't fork" in r.stderr
    same(facts, True)
