"""minibox-init (csrc/init.c) as a real init: exit codes, signals, orphans.

Most tests run it as a child subreaper of the test (no root needed); the
PID-namespace tests run it as a real PID 1 through unshare(1) when root.
"""

import os
import shutil
import signal
import struct
import subprocess
import time

import pytest

from conftest import wait_for
from minibox import libexec

BUSYBOX = "/bin/busybox"

pytestmark = pytest.mark.skipif(not os.access(BUSYBOX, os.X_OK), reason=f"{BUSYBOX} missing")


def init_path():
    return libexec.path(libexec.INIT)


def run_init(*cmd, timeout=10):
    return subprocess.run([init_path(), "--", *cmd], check=False, capture_output=True, text=True,
                          timeout=timeout)


def children_of(pid):
    """(pid, state, comm) of every process whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm_end = stat.rindex(")")
        fields = stat[comm_end + 2:].split()
        if int(fields[1]) == pid:
            found.append((int(entry), fields[0], stat[stat.index("(") + 1:comm_end]))
    return found


@pytest.fixture
def popen():
    """Popen that kills (and reaps) what it started, whatever the test did."""
    started = []

    def start(argv, **kw):
        p = subprocess.Popen(argv, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        for pid, _, _ in children_of(p.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.kill()
        p.wait()


def test_is_statically_linked():
    # No PT_INTERP program header: it runs in images that have no libc.
    with open(init_path(), "rb") as f:
        elf = f.read()
    assert elf[:4] == b"\x7fELF" and elf[4] == 2  # ELF64
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    types = [struct.unpack_from("<I", elf, phoff + i * phentsize)[0] for i in range(phnum)]
    assert 3 not in types, "minibox-init has an ELF interpreter: not static"


def test_exit_status_is_the_childs():
    assert run_init(BUSYBOX, "sh", "-c", "exit 7").returncode == 7
    assert run_init(BUSYBOX, "sh", "-c", "kill -9 $$").returncode == 137
    r = run_init(BUSYBOX, "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n")


def test_exec_failures_are_127_and_126(tmp_path):
    r = run_init("/nonexistent/cmd")
    assert r.returncode == 127
    assert r.stderr == "minibox-init: exec /nonexistent/cmd: No such file or directory\n"
    r = run_init("no-such-command-minibox")
    assert r.returncode == 127
    plain = tmp_path / "not-executable"
    plain.write_text("data")
    r = run_init(str(plain))
    assert r.returncode == 126
    assert r.stderr == f"minibox-init: exec {plain}: Permission denied\n"


def test_usage_without_command():
    r = subprocess.run([init_path()], check=False, capture_output=True, text=True, timeout=10)
    assert r.returncode == 125 and "usage" in r.stderr


def test_sigterm_reaches_the_child_promptly(popen):
    p = popen([init_path(), "--", BUSYBOX, "sleep", "1000"])
    wait_for(lambda: children_of(p.pid))
    start = time.monotonic()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=5) == 143
    assert time.monotonic() - start < 2


def test_other_signals_are_forwarded(popen):
    p = popen([init_path(), "--", BUSYBOX, "sh", "-c",
               'trap "exit 5" USR1; trap "exit 6" WINCH; echo ready; while :; do sleep 0.05; done'],
              stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGUSR1)
    assert p.wait(timeout=5) == 5


def test_child_gets_its_own_process_group(popen):
    p = popen([init_path(), "--", BUSYBOX, "sleep", "1000"])
    (child, _, _), = wait_for(lambda: children_of(p.pid))
    assert os.getpgid(child) == child != os.getpgid(p.pid)


# 100 orphans, then the shell idles until told to leave (SIGUSR1), so the
# check below never races the shell's own exit, however loaded the machine.
ORPHANS = "trap 'exit 0' USR1; for i in $(seq 100); do (sleep 0.3 &); done; while :; do sleep 0.05; done"


def check_orphans_reaped(init_pid):
    """The orphans really became init's children, and every one was reaped (no zombie)."""
    # Every `sleep` whose parent is init is an orphan that was handed to it.
    assert wait_for(lambda: [c for c in children_of(init_pid) if c[2] == "sleep"])
    # Once all `sleep 0.3` have exited, only the shell is left: nothing stays a zombie.
    kids = wait_for(lambda: (lambda k: k if len(k) == 1 else None)(children_of(init_pid)), timeout=60)
    assert kids[0][1] != "Z", kids  # the shell itself (comm "busybox")
    os.kill(kids[0][0], signal.SIGUSR1)


def test_orphans_leave_no_zombie_as_subreaper(popen):
    p = popen([init_path(), "--", BUSYBOX, "sh", "-c", ORPHANS])
    check_orphans_reaped(p.pid)
    assert p.wait(timeout=5) == 0


def unshare_pid_works():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "--pid", "--fork", BUSYBOX, "true"], check=False, capture_output=True,
                       timeout=10)
    return r.returncode == 0


needs_pidns = pytest.mark.skipif(not unshare_pid_works(),
                                 reason="needs root and unshare --pid (PID namespaces)")


@needs_pidns
def test_as_pid1_orphans_leave_no_zombie(popen):
    u = popen(["unshare", "--pid", "--fork", init_path(), "--", BUSYBOX, "sh", "-c", ORPHANS])
    (init_pid, _, _), = wait_for(lambda: children_of(u.pid))
    check_orphans_reaped(init_pid)
    assert u.wait(timeout=5) == 0


@needs_pidns
def test_as_pid1_sigterm_from_outside_stops_promptly(popen):
    # A PID 1 without a handler would never see this SIGTERM (the kernel
    # drops it); init must still get it and pass it on.
    u = popen(["unshare", "--pid", "--fork", init_path(), "--", BUSYBOX, "sleep", "1000"])
    (init_pid, _, _), = wait_for(lambda: children_of(u.pid))
    wait_for(lambda: children_of(init_pid))
    start = time.monotonic()
    os.kill(init_pid, signal.SIGTERM)
    assert u.wait(timeout=5) == 143
    assert time.monotonic() - start < 2


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for chroot")
def test_runs_in_a_root_without_libc(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy2(init_path(), root / "init")
    shutil.copy2(BUSYBOX, root / "busybox")
    r = subprocess.run(["chroot", str(root), "/init", "--", "/busybox", "sh", "-c", "exit 4"],
                       check=False, capture_output=True, text=True, timeout=10)
    assert r.returncode == 4, r.stderr
