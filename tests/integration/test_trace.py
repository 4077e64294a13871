"""``run --trace``: the Linux primitives, in the order minibox applies them.

The labs use these lines to show what docker hides; each test here would
fail if a primitive went missing from the trace or was printed out of order.
"""

import os
import re
import subprocess
import sys

from conftest import requires

pytestmark = requires("root", "overlay", "busybox")


def trace_lines(stderr: str) -> list[str]:
    return [line[len("[trace] "):] for line in stderr.splitlines() if line.startswith("[trace] ")]


def index_of(lines: list[str], pattern: str) -> int:
    for i, line in enumerate(lines):
        if re.search(pattern, line):
            return i
    raise AssertionError(f"no trace line matches {pattern!r}:\n" + "\n".join(lines))


def test_trace_of_a_100m_echo_shows_namespaces_overlay_memory_limit_and_exec(mb):
    r = mb("run", "--rm", "--trace", "-m", "100m", "busybox", "echo", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"  # trace lines never reach the container's stdout
    lines = trace_lines(r.stderr)
    overlay = index_of(lines, r"^mount overlay overlay -> \S+/merged \(lowerdir=\S+,upperdir=\S+/diff,workdir=")
    lower = index_of(lines, r"^  lowerdir l/\w+ = /\S+/diff \(read-only\)")
    pidns = index_of(lines, r"CLONE_NEWPID")
    others = index_of(lines, r"unshare\(.*CLONE_NEWNS")
    for flag in ("CLONE_NEWNS", "CLONE_NEWUTS", "CLONE_NEWIPC", "CLONE_NEWNET"):
        assert flag in lines[others]
    memory = index_of(lines, r"^cgroup write /sys/fs/cgroup/\S*(memory\.limit_in_bytes|memory\.max) = 104857600$")
    joined = index_of(lines, r"^cgroup write \S+/(tasks|cgroup\.procs) = 0 \(the process moves itself\)$")
    proc = index_of(lines, r"^mount proc proc -> /proc \(nosuid,nodev,noexec\)$")
    pivot = index_of(lines, r"^pivot_root \S+/merged")
    caps = index_of(lines, r"^capabilities: drop \d+ from the bounding set: .*CAP_SYS_ADMIN")
    seccomp = index_of(lines, r"^seccomp: load a BPF filter of [1-9]\d* instructions")
    execve = index_of(lines, r'^execve /bin/echo \["echo", "hello"\]$')
    assert overlay < lower < pidns <= others < memory < joined < proc < pivot < caps < seccomp < execve
    assert execve == len(lines) - 1


def test_trace_names_the_veth_pair_and_address_on_the_bridge(mb):
    r = mb("run", "--rm", "--trace", "busybox", "true")
    assert r.returncode == 0, r.stderr
    lines = trace_lines(r.stderr)
    veth = index_of(lines, r"^veth \S+ \(host, on \S+\) <-> eth0 \(in /proc/\d+/ns/net\)$")
    addr = index_of(lines, r"^ip addr add \d+\.\d+\.\d+\.\d+/\d+ dev eth0; ip route add default via \d")
    # The network is wired while the init mounts its rootfs, but always before it execs.
    assert veth < addr < index_of(lines, r"^execve /bin/true ")


def test_init_trace_lines_reach_the_users_stderr_not_the_containers(mb, tmp_path):
    """With -t the container's stderr is a pty; the init's lines must still reach ours."""
    r = mb("run", "--rm", "--trace", "-t", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert r.returncode == 0, r.stderr
    assert "[trace]" not in r.stdout
    lines = trace_lines(r.stderr)
    index_of(lines, r"^pivot_root ")
    index_of(lines, r"^execve /bin/sh ")


def test_without_trace_nothing_is_printed_and_the_trace_module_is_not_loaded(mb):
    r = mb("run", "--rm", "busybox", "echo", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n" and "[trace]" not in r.stderr
    # The untraced path must not even import the trace helpers. (python -v by
    # hand: the launcher's -I ignores PYTHONVERBOSE.)
    verbose = [sys.executable, "-v", *mb.cmd] if len(mb.cmd) == 1 else [mb.cmd[0], "-v", *mb.cmd[1:]]
    r = subprocess.run([*verbose, "--root", mb.root, "run", "--rm", "--network", "none", "busybox", "true"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "import 'minibox.runtime.tracing'" not in r.stderr
    assert "import 'minibox.commands.run'" in r.stderr  # the probe itself works


def test_detached_trace_reaches_the_cli_not_the_container_log(mb):
    r = mb("run", "-d", "--trace", "--network", "none", "busybox", "sh", "-c", "echo logged; sleep 30")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        lines = trace_lines(r.stderr)
        index_of(lines, r"^pivot_root ")
        index_of(lines, r'^execve /bin/sh \["sh", "-c", "echo logged; sleep 30"\]$')
        logs = mb("logs", cid)
        assert logs.stdout == "logged\n" and "[trace]" not in logs.stderr
    finally:
        mb("rm", "-f", cid)


def test_exec_and_rm_trace_what_they_join_and_undo(mb):
    r = mb("run", "-d", "-m", "64m", "busybox", "sleep", "30")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        e = mb("exec", "--trace", cid, "hostname")
        assert e.returncode == 0 and e.stdout.strip() == cid[:12], e.stderr
        lines = trace_lines(e.stderr)
        joined = index_of(lines, r"^cgroup write \S+/(tasks|cgroup\.procs) = 0 \(the process moves itself\)$")
        setns = [index_of(lines, rf"^setns {ns} ") for ns in ("ipc", "uts", "net", "mnt", "pid")]
        execve = index_of(lines, r'^execve /bin/hostname \["hostname"\]$')
        assert joined < min(setns) and max(setns) < execve
    finally:
        r = mb("rm", "-f", "--trace", cid)
    assert r.returncode == 0, r.stderr
    lines = trace_lines(r.stderr)
    kill = index_of(lines, r"^kill\(\d+, SIGKILL\)$")
    monitor = index_of(lines, r"^wait for monitor \d+")
    gone = index_of(lines, rf"^rm -r \S+/containers/{cid} ")
    assert kill < monitor < gone


def test_rm_trace_of_a_created_container_shows_the_overlay_and_dir_removed(mb):
    r = mb("create", "--network", "none", "busybox", "true")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    r = mb("rm", "--trace", cid)
    assert r.returncode == 0, r.stderr
    lines = trace_lines(r.stderr)
    assert index_of(lines, rf"^rm -r \S+/containers/{cid} ") == len(lines) - 1


def test_build_trace_shows_the_run_step_container(mb, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo built > /f\n")
    tag = f"trace-{os.urandom(4).hex()}"
    r = mb("build", "--trace", "--no-cache", "-t", tag, str(tmp_path))
    try:
        assert r.returncode == 0, r.stderr
        lines = trace_lines(r.stderr)
        assert index_of(lines, r"unshare\(.*CLONE_NEWNS") < index_of(lines, r"^pivot_root ") < \
            index_of(lines, r'^execve /bin/sh \["/bin/sh", "-c", "echo built > /f"\]$')
    finally:
        mb("rmi", tag)
