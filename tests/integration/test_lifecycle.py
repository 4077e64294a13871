"""Detached containers end to end: logs, exec, stop/kill/restart, --init, pause, the state machine.

Every test drives the real ``minibox`` command against real containers (the
``mb`` fixture's root holds busybox) and checks what the kernel says: /proc,
the cgroup dirs, /proc/self/mountinfo, /sys/class/net. Each container gets a
unique name and is removed with ``rm -f`` even when the test fails.
"""

import glob
import json
import os
import re
import select
import signal
import subprocess
import time
import uuid

import pytest

from conftest import requires, wait_for

pytestmark = requires("root", "overlay", "busybox")

RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")


def unique() -> str:
    return f"lc-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def ctr(mb):
    """Names for containers this test creates; every one is force-removed afterwards."""
    names = []

    def make() -> str:
        names.append(unique())
        return names[-1]

    yield make
    if names:
        mb("rm", "-f", *names)


def record(mb, ref: str) -> dict:
    cid = json.loads(mb("inspect", ref, check=True).stdout)[0]["Id"]
    with open(os.path.join(mb.root, "containers", cid, "container.json")) as f:
        return json.load(f)


def inspect_state(mb, ref: str) -> dict:
    return json.loads(mb("inspect", ref, check=True).stdout)[0]["State"]


def ps_row(mb, name: str) -> str:
    rows = [line for line in mb("ps", "-a").stdout.splitlines() if line.endswith(" " + name)]
    return rows[0] if rows else ""


def detached(mb, name: str, *args: str, network: str = "none") -> str:
    r = mb("run", "-d", "--name", name, "--network", network, *args)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), r.stdout
    return cid


def alive(pid: int) -> bool:
    """True for a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def mounts_mentioning(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if text in line]


def cgroup_dirs_named(cid: str) -> list[str]:
    found = []
    for hierarchy in glob.glob("/sys/fs/cgroup/*/"):
        for dirpath, dirnames, _ in os.walk(hierarchy):
            if cid in dirnames:
                found.append(os.path.join(dirpath, cid))
            dirnames[:] = [d for d in dirnames if len(d) != 64]  # container dirs hold no children
    return found


# ------------------------------------------------------------------ run -d, logs, wait


def test_run_d_logs_keep_streams_apart_then_exited_0_and_wait_0(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sh", "-c", "echo out; echo err >&2; sleep 1")
    logs = wait_for(lambda: (lambda r: r if "out" in r.stdout and "err" in r.stderr else None)(mb("logs", name)),
                    what="both log lines")
    assert logs.stdout == "out\n" and logs.stderr == "err\n"
    assert "Up " in ps_row(mb, name)
    assert mb("wait", name, check=True).stdout == "0\n"
    assert "Exited (0)" in ps_row(mb, name)
    state = inspect_state(mb, name)
    assert state["Status"] == "exited" and state["Pid"] == 0 and state["ExitCode"] == 0


def test_logs_tail_timestamps_since(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sh", "-c", "echo 1; echo 2 >&2; echo 3")
    assert mb("wait", name, check=True).stdout == "0\n"
    r = mb("logs", "--tail", "2", name, check=True)
    assert r.stdout == "3\n" and r.stderr == "2\n"
    assert mb("logs", "--tail", "0", name, check=True).stdout == ""
    stamped = mb("logs", "-t", name, check=True).stdout.splitlines()
    assert len(stamped) == 2 and all(RFC3339_NANO.match(line) for line in stamped), stamped
    assert [line.split(" ", 1)[1] for line in stamped] == ["1", "3"]
    assert mb("logs", "--since", "1h", name, check=True).stdout == "1\n3\n"
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert mb("logs", "--since", future, name, check=True).stdout == ""
    assert mb("logs", "--tail", "x", name).returncode == 125


def test_logs_follow_streams_and_ends_when_the_container_exits(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sh", "-c", "echo a; sleep 1.5; echo b")
    started = time.monotonic()
    follower = mb.popen("logs", "-f", name, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = follower.stdout.readline()
        first_at = time.monotonic() - started
        rest, _ = follower.communicate(timeout=15)
    finally:
        follower.kill()
    assert first == b"a\n" and rest == b"b\n"
    assert first_at < 1.2, "logs -f held the first line back until the end"
    assert follower.returncode == 0
    assert time.monotonic() - started >= 1.4


# ------------------------------------------------------------------ exec


def test_exec_sees_the_init_and_passes_exit_codes(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sleep", "1000")
    out = mb("exec", name, "ps", "-o", "pid,args", check=True).stdout
    assert re.search(r"^\s*1 sleep 1000$", out, re.M) and re.search(r"^\s*\d+ ps -o pid,args$", out, re.M), out
    assert mb("exec", name, "sh", "-c", "exit 3").returncode == 3
    r = mb("exec", name, "nosuchcmd")
    assert r.returncode == 127 and "executable file not found" in r.stderr
    r = mb("exec", name, "/etc")
    assert r.returncode == 126 and "permission denied" in r.stderr
    assert mb("exec", name).returncode == 125  # no command


def test_exec_env_workdir_user_stdin_and_detach(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sleep", "1000")
    r = mb("exec", "-e", "A=b c", "-w", "/tmp", "-u", "1000:1001", name, "sh", "-c", 'echo "$A"; pwd; id -u; id -g',
           check=True)
    assert r.stdout.split("\n")[:4] == ["b c", "/tmp", "1000", "1001"]
    assert mb("exec", "-i", name, "cat", input="through stdin\n", check=True).stdout == "through stdin\n"
    assert mb("exec", name, "cat", input="not passed\n", check=True).stdout == ""  # no -i: no stdin
    started = time.monotonic()
    assert mb("exec", "-d", name, "sh", "-c", "sleep 2; touch /tmp/detached-done").returncode == 0
    assert time.monotonic() - started < 1.5, "exec -d waited for the command"
    assert "sleep 2" in mb("exec", name, "ps", "-o", "args", check=True).stdout
    wait_for(lambda: mb("exec", name, "test", "-e", "/tmp/detached-done").returncode == 0, what="exec -d command")
    assert mb("exec", "-w", "relative", name, "true").returncode == 125


def _pids_with_cmdline(argv: list[str]) -> list[int]:
    want = ("\0".join(argv) + "\0").encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read() == want:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_an_exec_d_command_is_watched_by_a_small_static_waiter(mb, ctr):
    """What waits for an exec'd command sits in the container's cgroup: no 10 MB Python there."""
    name = ctr()
    detached(mb, name, "busybox", "sleep", "1000")
    mb("exec", "-d", name, "sleep", "999", check=True)
    command = wait_for(lambda: _pids_with_cmdline(["sleep", "999"]), what="the exec'd command")[0]
    with open(f"/proc/{command}/stat") as f:
        waiter = int(f.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{waiter}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:3] == [b"minibox-init", b"--wait", str(command).encode()]
    with open(f"/proc/{waiter}/status") as f:
        rss_kb = int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))
    assert rss_kb < 2048, f"the waiter keeps {rss_kb} kB"
    os.kill(command, signal.SIGTERM)
    wait_for(lambda: not alive(waiter), what="the waiter to go with its command")
    assert mb("exec", name, "sh", "-c", "kill -TERM $$").returncode == 143  # a status, passed on


def test_exec_tty_gives_an_interactive_shell(mb, ctr):
    import pty

    name = ctr()
    detached(mb, name, "busybox", "sleep", "1000")
    master, slave = pty.openpty()
    proc = mb.popen("exec", "-it", name, "sh", stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""

    def read_until(token: bytes, timeout: float = 10) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while token not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    return
                if not data:
                    return
                out += data

    try:
        read_until(b"# ")
        os.write(master, b"tty; ps -o pid,args; exit 7\n")
        read_until(b"never", timeout=3)
        assert proc.wait(timeout=10) == 7
    finally:
        proc.kill()
        os.close(master)
    text = out.decode(errors="replace")
    assert "/dev/pts/" in text, text
    assert re.search(r"^\s*1 sleep 1000", text, re.M) and re.search(r"^\s*\d+ sh\s*$", text, re.M), text


def test_exec_joins_every_namespace_cgroup_and_security_setting_of_the_init(mb, ctr):
    name = ctr()
    detached(mb, name, "--cap-drop", "NET_RAW", "busybox", "sleep", "1000")
    fields = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")

    def status(path: str) -> dict:
        text = mb("exec", name, "cat", path, check=True).stdout
        return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if k in fields}

    mine, init = status("/proc/self/status"), status("/proc/1/status")
    assert mine == init and len(mine) == len(fields), (mine, init)
    assert mine["Seccomp"] == "2", "the init's seccomp filter is missing"
    assert int(mine["CapBnd"], 16) & (1 << 13) == 0, "NET_RAW was dropped for the init but not for exec"
    ns = "for n in cgroup ipc mnt net pid uts; do readlink /proc/$$/ns/$n; readlink /proc/1/ns/$n; done"
    links = mb("exec", name, "sh", "-c", ns, check=True).stdout.split()
    assert len(links) == 12 and links[0::2] == links[1::2], links
    host = {os.readlink(f"/proc/self/ns/{n}") for n in ("ipc", "mnt", "net", "pid", "uts")}
    assert not host & set(links), "exec stayed in a host namespace"
    assert mb("exec", name, "cat", "/proc/self/cgroup").stdout == mb("exec", name, "cat", "/proc/1/cgroup").stdout
    rec = record(mb, name)
    helper_pids = open(os.path.join(rec["cgroup_paths"]["pids"], "cgroup.procs")).read().split()
    assert str(rec["state"]["pid"]) in helper_pids


def test_exec_into_a_stopped_or_paused_container_is_125(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "true")
    mb("wait", name, check=True)
    r = mb("exec", name, "true")
    assert r.returncode == 125 and re.search(r"container [0-9a-f]{64} is not running", r.stderr), r.stderr
    paused = ctr()
    detached(mb, paused, "busybox", "sleep", "1000")
    mb("pause", paused, check=True)
    r = mb("exec", paused, "true")
    assert r.returncode == 125 and "is paused, unpause the container before exec" in r.stderr
    mb("unpause", paused, check=True)


# ------------------------------------------------------------------ stop, kill, restart, --init


def test_stop_of_sleep_as_pid1_takes_the_timeout_and_is_137(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sleep", "1000")
    started = time.monotonic()
    r = mb("stop", "-t", "2", name, check=True)
    elapsed = time.monotonic() - started
    assert r.stdout == f"{name}\n"
    assert 2.0 <= elapsed < 6, elapsed
    assert inspect_state(mb, name)["ExitCode"] == 137
    assert mb("wait", name, check=True).stdout == "137\n"
    assert "Exited (137)" in ps_row(mb, name)


def test_stop_with_init_is_prompt_and_143(mb, ctr):
    name = ctr()
    detached(mb, name, "--init", "busybox", "sleep", "1000")
    assert "/sbin/docker-init" in mb("exec", name, "ps", "-o", "pid,args", check=True).stdout
    started = time.monotonic()
    mb("stop", "-t", "10", name, check=True)
    assert time.monotonic() - started < 2.0
    assert inspect_state(mb, name)["ExitCode"] == 143


@pytest.mark.parametrize("init", [True, False])
def test_100_orphans_leave_no_zombie_only_under_init(mb, ctr, init):
    name = ctr()
    script = "for i in $(seq 100); do (sleep 0.1 &); done; sleep 1000"
    detached(mb, name, *(["--init"] if init else []), "busybox", "sh", "-c", script)
    zombies = "ps -o stat | grep -c '^Z' || true"

    def settled():
        out = mb("exec", name, "sh", "-c", f"ps -o args | grep -c '^sleep 0.1' ; {zombies}", check=True).stdout.split()
        return out if out[0] == "0" else None

    running, count = wait_for(settled, what="the orphans' sleeps to end")
    if init:
        assert count == "0", f"{count} zombies under --init"
    else:
        # The control: sh as PID 1 does not reap what it did not fork, so the test can fail.
        assert int(count) >= 10, count


def test_stop_signal_and_stop_timeout_flags(mb, ctr):
    trapped = ctr()
    detached(mb, trapped, "--stop-signal", "SIGUSR1", "busybox", "sh", "-c",
             "trap 'exit 42' USR1; while :; do sleep 0.1; done")
    assert json.loads(mb("inspect", trapped).stdout)[0]["Config"]["StopSignal"] == "SIGUSR1"
    started = time.monotonic()
    mb("stop", trapped, check=True)
    assert time.monotonic() - started < 3
    assert inspect_state(mb, trapped)["ExitCode"] == 42

    bad = ctr()
    r = mb("run", "-d", "--name", bad, "--stop-signal", "NOSUCH", "busybox", "true")
    assert r.returncode == 125 and "Invalid signal: NOSUCH" in r.stderr
    assert mb("inspect", bad).returncode != 0  # nothing was created

    slow = ctr()
    detached(mb, slow, "--stop-timeout", "1", "busybox", "sleep", "1000")
    started = time.monotonic()
    mb("stop", slow, check=True)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 4, elapsed
    assert inspect_state(mb, slow)["ExitCode"] == 137


def test_kill_with_signal_and_default_sigkill(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sh", "-c", "trap 'exit 9' HUP; while :; do sleep 0.1; done")
    assert mb("kill", "-s", "HUP", name, check=True).stdout == f"{name}\n"
    assert mb("wait", name, check=True).stdout == "9\n"
    r = mb("kill", name)
    assert r.returncode == 1 and "is not running" in r.stderr
    other = ctr()
    detached(mb, other, "busybox", "sleep", "1000")
    mb("kill", other, check=True)
    assert mb("wait", other, check=True).stdout == "137\n"
    assert mb("kill", "-s", "NOSUCH", other).returncode == 125


def test_restart_runs_the_command_again(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sh", "-c", "echo started; exec sleep 1000")
    wait_for(lambda: mb("logs", name).stdout == "started\n", what="first start")
    first = inspect_state(mb, name)
    assert mb("restart", "-t", "1", name, check=True).stdout == f"{name}\n"
    second = inspect_state(mb, name)
    assert second["Status"] == "running" and second["Pid"] != first["Pid"]
    assert second["StartedAt"] > first["StartedAt"]
    assert not alive(first["Pid"])
    wait_for(lambda: mb("logs", name).stdout == "started\nstarted\n", what="second start in the log")
    # restart of an exited container simply starts it
    mb("stop", "-t", "0", name, check=True)
    mb("restart", name, check=True)
    assert inspect_state(mb, name)["Status"] == "running"


def test_pause_freezes_every_process_and_unpause_thaws(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done")
    pid = inspect_state(mb, name)["Pid"]
    counter = f"/proc/{pid}/root/tmp/n"
    wait_for(lambda: os.path.exists(counter) and open(counter).read().strip(), what="the counter")
    mb("pause", name, check=True)
    state = inspect_state(mb, name)
    assert state["Status"] == "paused" and state["Paused"] is True and state["Running"] is True
    assert "(Paused)" in ps_row(mb, name)
    freezer = record(mb, name)["cgroup_paths"].get("freezer")
    if freezer:
        assert open(os.path.join(freezer, "freezer.state")).read().strip() == "FROZEN"
    before = open(counter).read()
    time.sleep(0.6)
    assert open(counter).read() == before, "a paused container kept running"
    r = mb("pause", name)
    assert r.returncode == 1 and "is already paused" in r.stderr
    mb("unpause", name, check=True)
    wait_for(lambda: open(counter).read() != before, what="the counter to advance again")
    assert inspect_state(mb, name)["Status"] == "running"


def test_kill_of_a_paused_container_thaws_it_to_deliver_the_signal(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sh", "-c", "trap 'touch /tmp/got' USR1; while :; do sleep 0.1; done")
    pid = inspect_state(mb, name)["Pid"]
    mb("pause", name, check=True)
    mb("kill", "-s", "USR1", name, check=True)
    wait_for(lambda: os.path.exists(f"/proc/{pid}/root/tmp/got"), what="the trap to run")
    state = inspect_state(mb, name)
    assert (state["Status"], state["Paused"]) == ("running", False)
    freezer = record(mb, name)["cgroup_paths"].get("freezer")
    if freezer:
        assert open(os.path.join(freezer, "freezer.state")).read().strip() == "THAWED"


def _freezer_states_during(mb, args, freezer_state) -> tuple[subprocess.CompletedProcess, set]:
    """Run ``minibox ARGS`` and sample the container's freezer state until it returns."""
    proc = mb.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = set()
    while proc.poll() is None:
        seen.add(freezer_state())
        time.sleep(0.005)
    out, err = proc.communicate()
    return subprocess.CompletedProcess(args, proc.returncode, out, err), seen


def test_commit_freezes_a_running_container_for_the_snapshot_only(mb, ctr):
    name = ctr()
    # 48 MiB in the upper dir: the commit takes long enough to be watched.
    detached(mb, name, "busybox", "sh", "-c", "head -c 50331648 /dev/urandom > /big; touch /ready; exec sleep 1000")
    pid = inspect_state(mb, name)["Pid"]
    wait_for(lambda: os.path.exists(f"/proc/{pid}/root/ready"), timeout=30, what="the big file")
    paths = record(mb, name)["cgroup_paths"]
    if "freezer" in paths:
        state_file, frozen = os.path.join(paths["freezer"], "freezer.state"), {"FROZEN", "FREEZING"}
    else:
        state_file, frozen = os.path.join(paths["unified"], "cgroup.freeze"), {"1"}

    def freezer_state():
        with open(state_file) as f:
            return f.read().strip()

    tag = f"mbx-commit-{uuid.uuid4().hex[:8]}:1"
    try:
        r, seen = _freezer_states_during(mb, ["commit", name, tag], freezer_state)
        assert r.returncode == 0 and r.stdout.startswith("sha256:"), r.stderr
        assert seen & frozen, f"never frozen during the commit: {seen}"
        assert freezer_state() not in frozen and inspect_state(mb, name)["Status"] == "running"
        r, seen = _freezer_states_during(mb, ["commit", "--pause=false", name, tag], freezer_state)
        assert r.returncode == 0, r.stderr
        assert not seen & frozen
        r = mb("commit", "--pause", "maybe", name, tag)
        assert r.returncode == 125 and 'invalid argument "maybe" for "-p, --pause" flag' in r.stderr
    finally:
        mb("rmi", "-f", tag)


# ------------------------------------------------------------------ create, start, attach


def test_create_then_start(mb, ctr):
    name = ctr()
    r = mb("create", "--name", name, "--network", "none", "busybox", "sh", "-c", "echo hello; sleep 1000")
    assert r.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", r.stdout)
    assert "Created" in ps_row(mb, name) and name not in mb("ps").stdout
    assert inspect_state(mb, name)["Status"] == "created"
    assert mb("start", name, check=True).stdout == f"{name}\n"
    assert inspect_state(mb, name)["Status"] == "running"
    wait_for(lambda: mb("logs", name).stdout == "hello\n", what="the log")
    # start of a running container: docker prints the name and does nothing
    pid = inspect_state(mb, name)["Pid"]
    assert mb("start", name, check=True).stdout == f"{name}\n"
    assert inspect_state(mb, name)["Pid"] == pid


def test_start_attach_and_interactive(mb, ctr):
    name = ctr()
    mb("create", "--name", name, "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 5",
       check=True)
    r = mb("start", "-a", name)
    assert (r.returncode, r.stdout, r.stderr) == (5, "out\n", "err\n")
    inter = ctr()
    mb("create", "-i", "--name", inter, "--network", "none", "busybox", "sh", "-c", "tr a-z A-Z", check=True)
    r = mb("start", "-a", "-i", inter, input="shout\n")
    assert (r.returncode, r.stdout) == (0, "SHOUT\n"), r.stderr


def test_run_d_i_then_attach_feeds_stdin_and_splits_the_streams(mb, ctr):
    name = ctr()
    detached(mb, name, "-i", "busybox", "sh", "-c", "read x; echo got $x; read y; echo $y >&2; exit 4")
    r = mb("attach", name, input="hello\nworld\n", timeout=20)
    assert (r.returncode, r.stdout, r.stderr) == (4, "got hello\n", "world\n")
    logs = mb("logs", name, check=True)
    assert (logs.stdout, logs.stderr) == ("got hello\n", "world\n")
    r = mb("attach", name)
    assert r.returncode == 125 and "You cannot attach to a stopped container, start it first" in r.stderr


def test_attach_without_stdin_sees_later_output_and_the_exit_code(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sh", "-c", "sleep 1; echo late; exit 3")
    r = mb("attach", name, timeout=20)
    assert (r.returncode, r.stdout) == (3, "late\n"), r.stderr


def test_attach_to_a_tty_container_is_raw(mb, ctr):
    name = ctr()
    detached(mb, name, "-t", "busybox", "sh", "-c", "sleep 1; tty; exit 2")
    r = mb("attach", name, timeout=20)
    # text mode reads the pty's "\r\n" as "\n"; a frame header would show as "\x01\x00..."
    assert (r.returncode, r.stdout) == (2, "/dev/pts/0\n"), r.stderr
    assert mb("logs", name, check=True).stdout == "/dev/pts/0\n"


def test_detach_keys_leave_the_container_running(mb, ctr):
    name = ctr()
    detached(mb, name, "-i", "busybox", "sh", "-c", "while read line; do echo \"got $line\"; done")
    started = time.monotonic()
    r = mb("attach", name, input="one\n\x10\x11two\n", timeout=20)
    assert r.returncode == 0 and time.monotonic() - started < 5, r.stderr
    assert inspect_state(mb, name)["Status"] == "running"
    wait_for(lambda: mb("logs", name).stdout == "got one\n", what="the line before the keys")
    r = mb("attach", name, input="three\n\x10\x11")
    assert r.returncode == 0
    wait_for(lambda: mb("logs", name).stdout == "got one\ngot three\n", what="the second attach's line")


def test_attach_to_a_foreground_run_says_why_not(mb, ctr):
    name = ctr()
    proc = mb.popen("run", "--name", name, "--network", "none", "busybox", "sh", "-c", "echo up; sleep 1000",
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline() == b"up\n"
        r = mb("attach", name)
        assert r.returncode == 125 and "has no monitor to attach to" in r.stderr, r.stderr
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ the state machine


def test_illegal_moves_are_refused_with_dockers_wording(mb, ctr):
    running = ctr()
    detached(mb, running, "busybox", "sleep", "1000")
    r = mb("unpause", running)
    assert r.returncode == 1 and re.search(r"Error response from daemon: container [0-9a-f]{64} is not paused",
                                           r.stderr), r.stderr
    r = mb("rm", running)
    assert r.returncode == 1 and (f'cannot remove container "/{running}": container is running: stop the '
                                  "container before removing or force remove") in r.stderr, r.stderr
    assert inspect_state(mb, running)["Status"] == "running"
    mb("pause", running, check=True)
    r = mb("rm", running)
    assert r.returncode == 1 and f'cannot remove container "/{running}": container is paused and must be ' \
        "unpaused first" in r.stderr, r.stderr
    rec = record(mb, running)
    assert mb("rm", "-f", running).returncode == 0  # a frozen init still dies
    assert _leftovers(mb, rec) == []

    exited = ctr()
    detached(mb, exited, "busybox", "true")
    mb("wait", exited, check=True)
    r = mb("pause", exited)
    assert r.returncode == 1 and re.search(r"container [0-9a-f]{64} is not running", r.stderr), r.stderr
    r = mb("unpause", exited)
    assert r.returncode == 1 and "is not paused" in r.stderr
    assert mb("exec", exited, "true").returncode == 125
    assert mb("stop", exited, check=True).stdout == f"{exited}\n"  # docker: stopping a stopped one is fine
    assert mb("wait", exited, check=True).stdout == "0\n"
    r = mb("logs", "nosuch-" + running)
    assert r.returncode == 125 and "No such container" in r.stderr


def _leftovers(mb, rec: dict) -> list[str]:
    cid = rec["id"]
    left = [f"mount: {line.strip()}" for line in mounts_mentioning(cid)]
    left += [f"cgroup: {d}" for d in cgroup_dirs_named(cid)]
    left += [f"cgroup: {p}" for p in rec["cgroup_paths"].values() if os.path.exists(p)]
    veth = (rec.get("network") or {}).get("host_veth")
    if veth and os.path.exists(f"/sys/class/net/{veth}"):
        left.append(f"veth: {veth}")
    # a start killed before it saved its endpoint: minibox names host veths after the short id
    left += [f"veth: {p}" for p in glob.glob(f"/sys/class/net/*{cid[:12]}*")]
    if os.path.exists(os.path.join(mb.root, "containers", cid)):
        left.append("state dir")
    if os.path.lexists(os.path.join(mb.root, "names", rec["name"])):
        left.append("name link")
    return left


def _assert_truthful_then_clean(mb, name: str, rec: dict) -> None:
    wait_for(lambda: "Exited (137)" in ps_row(mb, name), timeout=5, what=f"ps -a to say Exited: {ps_row(mb, name)}")
    state = inspect_state(mb, name)
    assert state["Status"] == "exited" and state["Running"] is False and state["Pid"] == 0
    assert not alive(rec["state"]["pid"]), "the container outlived its watcher"
    assert mb("start", name).returncode in (0, 125)  # either works or says why; never hangs
    r = mb("rm", "-f", name)
    assert r.returncode == 0, r.stderr
    assert _leftovers(mb, rec) == []


@requires("root")
def test_sigkill_of_the_monitor_ps_truthful_and_rm_f_cleans_everything(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sh", "-c", "sleep 1000 & sleep 1000", network="bridge")
    rec = record(mb, name)
    monitor = rec["state"]["monitor_pid"]
    assert "minibox-monitor" in open(f"/proc/{monitor}/cmdline").read()
    assert rec["network"] and os.path.exists(f"/sys/class/net/{rec['network']['host_veth']}")
    os.kill(monitor, signal.SIGKILL)
    _assert_truthful_then_clean(mb, name, rec)


def test_sigkill_of_a_foreground_run_ps_truthful_and_rm_f_cleans_everything(mb, ctr):
    name = ctr()
    proc = mb.popen("run", "--name", name, "busybox", "sh", "-c", "sleep 1000 & echo up; sleep 1000",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"up\n"
        rec = record(mb, name)
        assert rec["state"]["status"] == "running" and rec["network"]
        proc.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    _assert_truthful_then_clean(mb, name, rec)


def test_sigkill_of_run_at_any_step_leaves_ps_truthful_and_rm_f_clean(mb):
    """Kill ``minibox run`` at spread-out moments of create and start; nothing may leak."""
    seen = set()
    for delay in (0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.3):
        name = unique()
        proc = mb.popen("run", "--name", name, "busybox", "sleep", "1000",
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        link = os.path.join(mb.root, "names", name)
        cid = os.readlink(link) if os.path.lexists(link) else None
        if cid is None:
            seen.add("nothing yet")
            continue
        r = mb("inspect", name)
        if r.returncode == 0:
            state = json.loads(r.stdout)[0]["State"]
            seen.add(state["Status"])
            assert state["Status"] in ("created", "exited"), state  # nothing can run: its parent is gone
            assert state["Pid"] == 0
            with open(os.path.join(mb.root, "containers", cid, "container.json")) as f:
                rec = json.load(f)
        else:
            seen.add("half-created")  # killed inside create: a dir without a record
            rec = {"id": cid, "name": name, "cgroup_paths": {}, "network": None}
        r = mb("rm", "-f", name)
        if r.returncode != 0:
            # killed between reserving the name and making the dir: only a dangling link,
            # which the next run --name reclaims
            assert "No such container" in r.stderr and not os.path.exists(os.path.join(mb.root, "containers", cid))
            os.unlink(link)
        assert _leftovers(mb, rec) == [], (delay, seen)
    print("steps hit:", sorted(seen))
    assert len(seen) >= 2, f"every kill landed in the same step: {seen}"


def test_when_pid1_exits_every_other_process_is_gone(mb, ctr):
    name = ctr()
    detached(mb, name, "busybox", "sh", "-c", "sleep 1000 & sleep 1000 & while [ ! -e /tmp/go ]; do sleep 0.1; done")
    mb("exec", "-d", name, "sleep", "1000", check=True)
    rec = record(mb, name)
    procs = os.path.join(rec["cgroup_paths"]["pids"], "cgroup.procs")
    pids = wait_for(lambda: (lambda p: p if len(p) >= 4 else None)(open(procs).read().split()),
                    what="the container's processes")
    mb("exec", name, "touch", "/tmp/go", check=True)
    assert mb("wait", name, check=True).stdout == "0\n"
    wait_for(lambda: not any(alive(int(p)) for p in pids), timeout=5, what="every process to be gone")
    assert not os.path.exists(rec["cgroup_paths"]["pids"])
