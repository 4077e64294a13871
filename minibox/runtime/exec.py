"""Run an extra process inside a running container (``runc exec``).

The new process joins the container's cgroup and every namespace of its
init (PID last: joining a PID namespace only affects children, so we fork
once more), gets the same capabilities, no_new_privs and seccomp filter as
the init, and execs. Failures before execve come back over a pipe as in
``process.create``, with docker's 126/127 exit codes. The helper that forked
the command then becomes ``minibox-init --wait`` (static C, a few hundred
kB): it reaps the command, forwards signals and exits with its status.
"""

import os

from minibox import syscalls as sc
from minibox.errors import EXIT_RUNTIME, MiniboxError, exec_exit_code
from minibox.runtime import hygiene
from minibox.runtime import process as proc

# Join order: the user namespace first (a --userns-remap container's other
# namespaces are owned by it), the mount namespace last but one (our /proc
# paths vanish with it, so every fd is opened first), PID last.
_ORDER = ("user", "cgroup", "ipc", "uts", "net", "mnt", "pid")
_KIND = {"user": "user", "cgroup": "cgroup", "ipc": "ipc", "uts": "uts", "net": "network", "mnt": "mount",
         "pid": "pid"}


def exec_process(init_pid: int, spec: dict, process: dict, *, cgroup=None,
                 stdio: tuple[int, int, int] | None = None, winsize: bytes | None = None,
                 trace=None):
    """Start ``process`` (OCI process dict) in the container of ``init_pid``.

    Returns (pid of the forked helper, console master fd or None). The
    helper's exit status is the exec'd command's.
    """
    ns_fds = []
    for name in _ORDER:
        path = f"/proc/{init_pid}/ns/{name}"
        if os.path.exists(path) and os.readlink(path) != os.readlink(f"/proc/self/ns/{name}"):
            ns_fds.append((name, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
    # The init's root directory, entered after the mount namespace (hygiene.enter_root).
    ns_fds.append(("root", os.open(f"/proc/{init_pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)))
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    parent_sock = child_sock = None
    if process.get("terminal"):
        import socket

        parent_sock, child_sock = socket.socketpair()
    full_spec = dict(spec, process=process)
    waiter = _open_waiter()
    pid = os.fork()
    if pid == 0:
        _helper(full_spec, ns_fds, cgroup, err_w, err_r, stdio, child_sock, parent_sock, waiter, trace)
    os.close(waiter)
    for _name, fd in ns_fds:
        os.close(fd)
    os.close(err_w)
    console = None
    if child_sock is not None:
        child_sock.close()
        init = proc.InitProcess(pid, -1, -1, parent_sock)
        init._receive_console(winsize)
        console = init.console_fd
    report = proc.read_all(err_r)
    os.close(err_r)
    if report:
        os.waitpid(pid, 0)
        raise proc._decode_failure(report)
    return pid, console


def _open_waiter() -> int:
    """An fd of the static minibox-init, for the helper to fexecve once the command runs.

    Opened here: the helper has entered the container's mount namespace and
    root by then, where the host's files are out of sight.
    """
    from minibox import libexec

    return os.open(libexec.path(libexec.INIT), os.O_RDONLY | os.O_CLOEXEC)


def _become_waiter(waiter: int, child: int) -> None:
    """Turn the helper into ``minibox-init --wait CHILD`` (a few hundred kB, not a Python).

    It reaps the command, forwards signals to it and exits with its status,
    as the helper did, while keeping this pid: the engine's view of the exec
    does not change. A fallback waits in Python if the exec fails.
    """
    try:
        os.execve(waiter, ["minibox-init", "--wait", str(child)], {})
    except OSError:
        _, status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(128 - code if code < 0 else code)


def _helper(spec, ns_fds, cgroup, err_w, err_r, stdio, console_sock, parent_sock, waiter,
            trace=None) -> None:
    code = EXIT_RUNTIME
    try:
        if trace:
            from minibox.runtime import tracing

            tracing.keep_stderr()
        os.close(err_r)
        if parent_sock is not None:
            parent_sock.close()
        hygiene.make_non_dumpable()  # before joining: no container process may open our exe
        if cgroup is not None:
            proc.join_cgroup(cgroup, trace)
        security = proc._preload(spec)
        for name, fd in ns_fds:
            if name == "root":
                hygiene.enter_root(fd)
                os.close(fd)
                continue
            if trace:
                trace(f"setns {name} (the init's /proc/PID/ns/{name})")
            sc.setns(fd, sc.NAMESPACE_FLAGS[_KIND[name]], name)
            os.close(fd)
        os.setsid()
        if trace:
            trace("fork: the child is the first to live in the joined PID namespace")
        child = os.fork()
        if child:
            os.close(err_w)
            if console_sock is not None:
                console_sock.close()
            # Only the command needs the caller's stdio. Holding it here would
            # keep the caller's pipes open after ``exec -d`` returned.
            devnull = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.close(devnull)
            _become_waiter(waiter, child)
        _exec(spec, security, stdio, console_sock, trace)
    except MiniboxError as exc:
        code = exc.exit_code
        proc._report(err_w, str(exc), code)
    except OSError as exc:
        proc._report(err_w, str(exc), code)
    except BaseException as exc:  # noqa: BLE001
        proc._report(err_w, f"exec: {exc.__class__.__name__}: {exc}", code)
    os._exit(code)


def _exec(spec: dict, security, stdio, console_sock, trace=None) -> None:
    process = spec["process"]
    proc.reset_signals()
    # A session of its own: a pty can only become the controlling terminal
    # of a session leader (TIOCSCTTY fails with EPERM otherwise), and the
    # helper above, our parent, leads the session it made.
    os.setsid()
    if stdio is not None:
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target)
    if console_sock is not None:
        proc._setup_console(console_sock)
    hygiene.enter_cwd(process.get("cwd") or "/")
    env = process.get("env") or []
    args = process["args"]
    executable = proc._lookup(args[0], env)
    if trace:
        from minibox.runtime import tracing

        tracing.security(trace, process, spec.get("linux") or {})
    security.apply(process, spec.get("linux") or {})
    proc._switch_user(process.get("user") or {})
    proc._close_extra_fds()
    if trace:
        import json

        trace(f"execve {executable} {json.dumps(args)}")
    try:
        os.execve(executable, args, proc._env_dict(env))
    except OSError as exc:
        raise proc.InitFailed(f"exec {args[0]}: {os.strerror(exc.errno).lower()}",
                              exec_exit_code(exc.errno)) from None
