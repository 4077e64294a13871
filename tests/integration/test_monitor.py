"""minibox-monitor against real processes: the protocol of csrc/monitor.c.

Each test does the fork / setsid / subreaper / exec dance the engine does,
with busybox's sh standing in for the container, then reads the log and the
exit file the real binary wrote. No root needed: nothing here leaves the
test's own process tree and temp dir.
"""

import ctypes
import json
import os
import re
import signal
import socket
import struct
import time
from datetime import datetime

import pytest

from minibox import libexec

BUSYBOX = "/bin/busybox"
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWPID = 0x20000000
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")

pytestmark = pytest.mark.skipif(not os.access(BUSYBOX, os.X_OK), reason=f"{BUSYBOX} missing")


class Monitor:
    """A monitor started the engine's way; ``pid`` is the monitor, ``cpid`` the container."""

    def __init__(self, tmp_path, script, *, stdin=False, options=(), post=None, newpid=False,
                 tty=False):
        self.dir = tmp_path
        self.log = tmp_path / "ctr-json.log"
        self.exit_file = tmp_path / "exit.json"
        self.sock = tmp_path / "attach.sock"
        stdin = stdin or tty
        if tty:
            # One pty for all three: the monitor reads and writes the master.
            out_r, out_w = os.openpty()
            err_r, err_w = os.dup(out_r), os.dup(out_w)
            in_w, in_r = os.dup(out_r), os.dup(out_w)
            options = ["--tty", *options]
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            in_r, in_w = os.pipe() if stdin else (None, None)
        ready_r, ready_w = os.pipe()
        info_r, info_w = os.pipe()
        argv = [libexec.path(libexec.MONITOR), "--log", str(self.log),
                "--exit-file", str(self.exit_file), "--stdout-fd", str(out_r),
                "--ready-fd", str(ready_w), *options]
        if not tty:
            argv += ["--stderr-fd", str(err_r)]
        if stdin:
            argv += ["--stdin-fd", str(in_w), "--attach-socket", str(self.sock)]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.setsid()
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
                    os._exit(121)
                # The runtime's way: this process's next child is PID 1 of a new namespace.
                if newpid and libc.unshare(CLONE_NEWPID) != 0:
                    os._exit(122)
                cpid = os.fork()
                if cpid == 0:
                    os.dup2(in_r if stdin else os.open(os.devnull, os.O_RDONLY), 0)
                    os.dup2(out_w, 1)
                    os.dup2(err_w, 2)
                    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                    os.execv(BUSYBOX, [BUSYBOX, "sh", "-c", script])
                os.write(info_w, str(cpid).encode())
                keep = [out_r, err_r, ready_w] + ([in_w] if stdin else [])
                for fd in keep:
                    os.set_inheritable(fd, True)
                for fd in (out_w, err_w, ready_r, info_r, info_w) + ((in_r,) if stdin else ()):
                    os.close(fd)
                os.execv(argv[0], argv[:1] + ["--pid", str(cpid)] + argv[1:]
                         + (["--", *post] if post else []))
            finally:
                os._exit(120)
        for fd in (out_r, out_w, err_r, err_w, ready_w, info_w) + ((in_r, in_w) if stdin else ()):
            os.close(fd)
        self.pid = pid
        self.cpid = int(os.read(info_r, 32))
        os.close(info_r)
        self.ready = os.read(ready_r, 1)
        os.close(ready_r)
        self.status = None

    def wait(self, timeout=10.0):
        """The monitor's (or its post-exit command's) exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                return self.status
            time.sleep(0.01)
        raise AssertionError(f"monitor {self.pid} still running after {timeout}s")

    def kill(self):
        """Teardown: nothing the test started may survive it."""
        for pid in (self.cpid, self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.status is None:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass

    def records(self):
        return [json.loads(line) for line in self.log.read_text("utf-8").splitlines()]

    def exit_info(self):
        return json.loads(self.exit_file.read_text())

    def wait_for_log(self, text, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and text in self.log.read_text("utf-8", "replace"):
                return
            time.sleep(0.01)
        raise AssertionError(f"{text!r} never reached {self.log}")


@pytest.fixture
def monitor(tmp_path):
    started = []

    def start(script, **kw):
        m = Monitor(tmp_path, script, **kw)
        started.append(m)
        return m

    yield start
    for m in started:
        m.kill()


def parse_time(value):
    assert RFC3339_NANO.match(value), value
    # datetime takes microseconds only; the nanoseconds were checked above.
    return datetime.strptime(value[:26] + "+0000", "%Y-%m-%dT%H:%M:%S.%f%z")


def test_log_streams_exit_code_and_post_exit_command(monitor, tmp_path):
    marker = tmp_path / "finished"
    before = time.time()
    m = monitor("echo out; echo err >&2; exit 3",
                post=[BUSYBOX, "sh", "-c", 'echo "$0" > "$1"', "finish-ran", str(marker)])
    assert m.ready == b"1"
    assert m.wait() == 0  # the post-exit command's status: it replaced the monitor
    recs = m.records()
    assert [(r["stream"], r["log"]) for r in recs if r["stream"] == "stdout"] == [("stdout", "out\n")]
    assert [(r["stream"], r["log"]) for r in recs if r["stream"] == "stderr"] == [("stderr", "err\n")]
    assert len(recs) == 2
    for r in recs:
        assert set(r) == {"log", "stream", "time"}
        assert abs(parse_time(r["time"]).timestamp() - before) < 10
    info = m.exit_info()
    assert info["exit_code"] == 3 and info["signal"] == 0
    assert parse_time(info["finished_at"]).timestamp() >= before - 1
    assert marker.read_text() == "finish-ran\n"
    assert m.log.stat().st_mode & 0o777 == 0o600 and m.exit_file.stat().st_mode & 0o777 == 0o600
    # Atomic write: no temporary file is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctr-json.log", "exit.json", "finished"]


def test_sigkill_of_container_is_137(monitor):
    m = monitor("echo up; exec sleep 1000")
    m.wait_for_log("up")
    os.kill(m.cpid, signal.SIGKILL)
    assert m.wait() == 0
    assert m.exit_info()["exit_code"] == 137
    assert m.exit_info()["signal"] == signal.SIGKILL


def test_sigterm_to_monitor_reaches_container(monitor):
    m = monitor("echo up; exec sleep 1000")
    m.wait_for_log("up")
    start = time.monotonic()
    os.kill(m.pid, signal.SIGTERM)
    assert m.wait() == 0
    assert time.monotonic() - start < 3
    assert m.exit_info()["exit_code"] == 143


def test_monitor_rss_stays_small(monitor):
    # Output flowing through the whole time, so the buffers are in use.
    m = monitor("echo up; i=0; while [ $i -lt 3000 ]; do echo line $i; echo e $i >&2; i=$((i+1)); done;"
                " exec sleep 1000")
    m.wait_for_log("line 2999")
    with open(f"/proc/{m.pid}/status") as f:
        status = f.read()
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))
    assert rss_kb < 2048, f"monitor VmRSS {rss_kb} kB"
    assert len(m.records()) == 6001


def test_escaping_partial_lines_and_long_lines(monitor):
    m = monitor(r"""printf 'a"b\\c\tq\001\n'; printf '\377bad\n';"""
                r" head -c 40000 /dev/zero | tr '\0' x; echo; printf 'no-newline'")
    assert m.wait() == 0
    logs = [r["log"] for r in m.records() if r["stream"] == "stdout"]
    assert logs[0] == 'a"b\\c\tq\x01\n'
    assert logs[1] == "\ufffdbad\n"  # invalid UTF-8 made valid, as docker does
    long = logs[2:-1]
    # docker's json-file splits at 16 KiB; only the last piece ends the line.
    assert [len(x) for x in long] == [16384, 16384, 40000 - 2 * 16384 + 1]
    assert "".join(long) == "x" * 40000 + "\n"
    assert logs[-1] == "no-newline"


def test_orphan_holding_the_pipe_does_not_block_the_exit(monitor, tmp_path):
    bgpid = tmp_path / "bgpid"
    m = monitor(f"sleep 30 & echo $! > {bgpid}; echo bye", options=["--grace-ms", "300"])
    try:
        start = time.monotonic()
        assert m.wait() == 0
        assert time.monotonic() - start < 5
        assert m.exit_info()["exit_code"] == 0
        assert [r["log"] for r in m.records()] == ["bye\n"]
    finally:
        if bgpid.exists():
            try:
                os.kill(int(bgpid.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def can_unshare_pid():
    if os.geteuid() != 0:
        return False
    import subprocess

    return subprocess.run(["unshare", "--pid", "--fork", BUSYBOX, "true"],
                          check=False, capture_output=True, timeout=10).returncode == 0


@pytest.mark.skipif(not can_unshare_pid(), reason="needs root and PID namespaces")
def test_container_as_pid1_of_its_namespace_and_post_exit_command_can_fork(monitor, tmp_path):
    marker = tmp_path / "finished"
    # $(...) forks: it fails with ENOMEM if the monitor left its children's
    # PID namespace pointing at the container's dead one.
    m = monitor("echo pid $$; exit 4", newpid=True,
                post=[BUSYBOX, "sh", "-c", 'x=$(echo forked) && echo "$x" > "$0"', str(marker)])
    assert m.wait() == 0
    assert [r["log"] for r in m.records()] == ["pid 1\n"]
    assert m.exit_info()["exit_code"] == 4
    assert marker.read_text() == "forked\n"


def read_frames(sock):
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    frames = []
    while data:
        stream, size = struct.unpack(">BxxxI", data[:8])
        frames.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return frames


def test_attach_socket_stdin_and_framed_output(monitor):
    m = monitor('read line; echo "got $line"; echo e >&2', stdin=True,
                options=["--stdin-once", "--wait-attach"])
    assert m.ready == b"1"
    assert oct(m.sock.stat().st_mode & 0o777) == "0o600"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(m.sock))
        s.sendall(b"hello\n")
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        frames = read_frames(s)
        # On EOF the exit file is already there.
        assert m.exit_info()["exit_code"] == 0
    assert (1, b"got hello\n") in frames and (2, b"e\n") in frames
    assert m.wait() == 0
    assert not m.sock.exists()


def test_wait_attach_gives_up_on_a_client_that_never_comes(monitor):
    """A CLI that died before attaching: the output (more than a pipe holds) is logged anyway."""
    m = monitor("i=0; while [ $i -lt 12000 ]; do echo line$i; i=$((i+1)); done; echo done", stdin=True,
                options=["--wait-attach", "--attach-wait-ms", "300"])
    assert m.wait(timeout=15) == 0
    logged = [r["log"] for r in m.records()]
    assert logged[0] == "line0\n" and logged[-1] == "done\n" and len(logged) == 12001


def test_output_keeps_being_logged_after_the_client_detaches(monitor):
    """Attached, then gone: the container must not stall once its pipe is full."""
    m = monitor('read go; i=0; while [ $i -lt 12000 ]; do echo line$i; i=$((i+1)); done; echo done',
                stdin=True, options=["--wait-attach"])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(m.sock))
        s.sendall(b"go\n")
    assert m.wait(timeout=15) == 0
    assert m.records()[-1]["log"] == "done\n"


def test_tty_output_is_raw_and_logged_as_stdout(monitor):
    m = monitor('read x; echo "got $x"', tty=True, options=["--wait-attach"])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(m.sock))
        s.sendall(b"hello\n")
        s.settimeout(10)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    assert b"got hello\r\n" in raw and not raw.startswith(b"\x01\x00")  # no framing
    recs = m.records()
    assert {r["stream"] for r in recs} == {"stdout"}
    assert "got hello\r\n" in [r["log"] for r in recs]
    assert m.wait() == 0
    assert m.exit_info()["exit_code"] == 0


def test_setup_failure_takes_the_container_down(tmp_path, monitor):
    m = monitor("exec sleep 1000", options=["--log", str(tmp_path / "no" / "such" / "dir.log")])
    assert m.ready == b""  # EOF without the ready byte: the monitor failed
    assert m.wait() == 125
    with pytest.raises(ProcessLookupError):
        os.kill(m.cpid, 0)


def test_refuses_a_pid_that_is_not_its_child(tmp_path):
    import subprocess

    r = subprocess.run([libexec.path(libexec.MONITOR), "--pid", str(os.getpid()),
                        "--log", str(tmp_path / "l"), "--exit-file", str(tmp_path / "e")],
                       check=False, capture_output=True, text=True, timeout=10)
    assert r.returncode == 125
    assert f"waitid {os.getpid()}" in r.stderr
    assert not (tmp_path / "l").exists()
