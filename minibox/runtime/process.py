"""Create and start a container's init process from an OCI spec.

The parent ``unshare(CLONE_NEWPID)``s, forks (the child is PID 1 of the new
PID namespace) and at once ``setns``es back, so later forks of the runtime
(iptables, helpers) stay in the host's PID namespace. The cgroup is made
before the fork and the child moves itself into it first thing
(Cgroup.join_self: cheaper than being moved by the parent, see there).

The child unshares the other namespaces and says "ready" over a pipe: from
then on the engine wires its network while the child, in parallel, mounts,
pivot_roots and finds its command. It then blocks until ``start()``, and
only then drops privileges, loads seccomp and execs, so no container code
runs before the network is in place. runc's init waits at the same point.
Any failure before execve travels back over a close-on-exec pipe as one
JSON object (message, exit code); EOF on that pipe means execve succeeded.
This is runc's sync-pipe design, minus the C re-exec: Python's fork
already gives us a private copy to work in.
"""

import json
import os
import signal

from minibox import syscalls as sc
from minibox.errors import (EXIT_NOT_FOUND, EXIT_RUNTIME, MiniboxError, SyscallError,
                            exec_exit_code)
from minibox.runtime import hygiene, mounts, userns

_READY = b"R"
_GO = b"G"


class InitFailed(MiniboxError):
    """The container's init failed before execve; carries docker's exit code."""


class InitProcess:
    """Parent-side handle of a created (not yet started) container init."""

    def __init__(self, pid: int, go_w: int, err_r: int, console_sock=None):
        self.pid = pid
        self._go_w = go_w
        self._err_r = err_r
        self._console_sock = console_sock
        self.console_fd: int | None = None
        self.cgroup = None

    def start(self, winsize: bytes | None = None) -> None:
        """Release the init; return once it has exec'd, or raise InitFailed."""
        try:
            os.write(self._go_w, _GO)
        except BrokenPipeError:
            pass  # the init failed during its setup: its report is on the error pipe
        os.close(self._go_w)
        self._go_w = -1
        if self._console_sock is not None:
            self._receive_console(winsize)
        report = read_all(self._err_r)
        os.close(self._err_r)
        self._err_r = -1
        if report:
            os.waitpid(self.pid, 0)
            raise _decode_failure(report)

    def _receive_console(self, winsize: bytes | None) -> None:
        import socket

        sock = self._console_sock
        try:
            _msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 1)
            if fds:
                self.console_fd = fds[0]
                if winsize:
                    import fcntl
                    import termios

                    fcntl.ioctl(self.console_fd, termios.TIOCSWINSZ, winsize)
                sock.send(b"A")
        finally:
            sock.close()

    def abort(self) -> "InitFailed | None":
        """Kill an init that will never be started (setup failed in the parent).

        Returns the init's own failure when it had reported one: it sets
        itself up while the parent works, and may have failed first.
        """
        if self._go_w >= 0:
            os.close(self._go_w)
            self._go_w = -1
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        if self._err_r < 0:
            return None
        report = read_all(self._err_r)  # the writer is dead: this cannot block
        os.close(self._err_r)
        self._err_r = -1
        return _decode_failure(report) if report else None


def create(spec: dict, bundle: str, *, stdio: tuple[int, int, int] | None = None,
           trace=None) -> InitProcess:
    """Fork the init into new namespaces; it waits for :meth:`InitProcess.start`."""
    linux = spec.get("linux") or {}
    namespaces = {ns["type"]: ns.get("path") for ns in linux.get("namespaces") or []}
    new_pid = "pid" in namespaces and not namespaces["pid"]
    tty = bool((spec.get("process") or {}).get("terminal"))
    plan = mounts.plan(spec, bundle)
    if trace:
        from minibox.runtime import tracing

        tracing.namespaces(trace, namespaces)
    cgroup = _make_cgroup(linux, trace)
    try:
        init = _spawn(spec, plan, namespaces, new_pid, tty, cgroup, stdio, trace)
    except BaseException:
        if cgroup is not None:
            cgroup.destroy()
        raise
    init.cgroup = cgroup
    return init


def _spawn(spec, plan, namespaces, new_pid, tty, cgroup, stdio, trace) -> InitProcess:
    """Fork the init (through userns.spawn for a user namespace); wait for its "ready"."""
    linux = spec.get("linux") or {}
    join = None if cgroup is None else (lambda: join_cgroup(cgroup, trace))

    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    parent_sock = child_sock = None
    if tty:
        import socket

        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if userns.wanted(linux):
        # The user namespace first, then every other one inside it (userns.py).
        # Its root cannot read the host's Python tree: import what the init needs now.
        _preload(spec)
        # The helper joins the cgroup before it enters the user namespace
        # (whose root may not write the host's cgroup files); the init,
        # its child, is born there.
        pid = userns.spawn(linux, new_pid, lambda: _child(spec, plan, namespaces, go_r, go_w, err_r, err_w,
                                                          stdio, child_sock, parent_sock, None, trace),
                           before_unshare=join)
    else:
        host_pidns = -1
        if new_pid:
            host_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            sc.unshare(sc.CLONE_NEWPID)
        try:
            pid = os.fork()
            if pid == 0:
                _child(spec, plan, namespaces, go_r, go_w, err_r, err_w, stdio, child_sock, parent_sock,
                       join, trace)
        finally:
            if new_pid:
                # Back to the host's PID namespace for every later fork of ours.
                sc.setns(host_pidns, sc.CLONE_NEWPID, "/proc/self/ns/pid")
                os.close(host_pidns)
    os.close(go_r)
    os.close(err_w)
    if child_sock is not None:
        child_sock.close()
    init = InitProcess(pid, go_w, err_r, parent_sock)
    first = os.read(err_r, 1)
    if first != _READY:
        report = first + read_all(err_r)
        init.abort()
        raise _decode_failure(report) if report else InitFailed("container init died during setup")
    return init


def _make_cgroup(linux: dict, trace):
    """The container's cgroup with its limits written, or None without a cgroupsPath."""
    path = linux.get("cgroupsPath")
    if not path:
        return None
    from minibox.cgroups import open_driver

    cg = open_driver().create(path)
    try:
        if trace:
            for cpath in dict.fromkeys(cg.paths().values()):
                trace(f"cgroup mkdir {cpath}")
        for warning in cg.apply(linux.get("resources") or {}, trace=trace) or ():
            # docker's wording for limits the kernel cannot honour (swap accounting off...).
            os.write(2, f"WARNING: {warning}\n".encode())
    except BaseException:
        cg.destroy()
        raise
    return cg


def join_cgroup(cgroup, trace) -> None:
    """In a process just forked (one thread): move itself into ``cgroup``."""
    for path in cgroup.join_self():
        if trace:
            trace(f"cgroup write {path} = 0 (the process moves itself)")


def read_all(fd: int) -> bytes:
    """Everything until EOF: a sync pipe's report once every writer has closed it."""
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _decode_failure(report: bytes) -> InitFailed:
    try:
        info = json.loads(report.decode())
    except ValueError:
        return InitFailed("container init failed: " + report.decode(errors="replace"))
    return InitFailed(info["message"], info.get("exit_code", EXIT_RUNTIME))


# ---------------------------------------------------------------- the child


def _child(spec, plan, namespaces, go_r, go_w, err_r, err_w, stdio, console_sock, parent_sock,
           join=None, trace=None):
    """The container's init before execve. Never returns."""
    code = EXIT_RUNTIME
    try:
        if trace:
            from minibox.runtime import tracing

            tracing.keep_stderr()
        os.close(go_w)
        os.close(err_r)
        if parent_sock is not None:
            parent_sock.close()
        # Die with the runtime while setting up, so nothing half-made survives it.
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        hygiene.make_non_dumpable()
        if join is not None:
            join()
        _enter_namespaces(namespaces)
        if namespaces.get("cgroup", 1) is None:
            # After the cgroup join, so the container sees its cgroup as "/".
            sc.unshare(sc.CLONE_NEWCGROUP)
        os.write(err_w, _READY)
        _init_setup(spec, plan, stdio, console_sock, go_r, trace)
    except SyscallError as exc:
        _report(err_w, str(exc), code)
    except InitFailed as exc:
        code = exc.exit_code
        _report(err_w, str(exc), code)
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        _report(err_w, f"container init: {exc.__class__.__name__}: {exc}", code)
    os._exit(code)


def reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; ignored dispositions survive execve, so restore them.

    Without this ``yes | head -1`` would loop forever inside the container.
    """
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)


def _report(fd: int, message: str, code: int) -> None:
    try:
        os.write(fd, json.dumps({"message": message, "exit_code": code}).encode())
    except OSError:
        pass


def _enter_namespaces(namespaces: dict) -> None:
    """setns into the namespaces given by path, unshare the new ones (but pid, cgroup)."""
    for kind, path in namespaces.items():
        if path and kind != "pid":
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, sc.NAMESPACE_FLAGS[kind], path)
            finally:
                os.close(fd)
    flags = 0
    for kind, path in namespaces.items():
        if not path and kind not in ("pid", "cgroup", "user"):
            flags |= sc.NAMESPACE_FLAGS[kind]
    if flags:
        sc.unshare(flags)
    if flags & sc.CLONE_NEWNET:
        sc.link_up("lo")


def _await_start(go_r: int) -> None:
    """Block until the runtime's start(); exit quietly if it gave up instead."""
    if os.read(go_r, 1) != _GO:
        os._exit(0)
    os.close(go_r)


def _init_setup(spec: dict, plan, stdio, console_sock, go_r: int, trace=None) -> None:
    process = spec.get("process") or {}
    linux = spec.get("linux") or {}
    reset_signals()
    os.setsid()
    if stdio is not None:
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target)
    security = _preload(spec)
    hygiene.check_kernel_dirs(plan.rootfs, spec.get("mounts"))
    mounts.apply_before_pivot(plan, trace)
    _prepare_cwd(plan.rootfs, process.get("cwd") or "/")
    if trace:
        trace(f"pivot_root {plan.rootfs} (then umount2 of the old root, MNT_DETACH)")
    mounts.pivot(plan.rootfs)
    mounts.apply_after_pivot(plan, trace)
    if spec.get("hostname") and namespaces_has(linux, "uts"):
        if trace:
            trace(f"sethostname {spec['hostname']}")
        sc.sethostname(spec["hostname"])
    if console_sock is not None:
        _setup_console(console_sock)
    _set_rlimits(process.get("rlimits") or [])
    env = process.get("env") or []
    args = process.get("args") or []
    if not args:
        raise InitFailed("no command specified", EXIT_RUNTIME)
    hygiene.enter_cwd(process.get("cwd") or "/")
    executable = _lookup(args[0], env)
    _await_start(go_r)
    user = process.get("user") or {}
    if trace:
        from minibox.runtime import tracing

        tracing.security(trace, process, linux)
    security.apply(process, linux)
    _switch_user(user)
    _close_extra_fds()
    if trace:
        trace(f"setresgid {user.get('gid', 0)}, setresuid {user.get('uid', 0)}")
        trace(f"execve {executable} {json.dumps(args)}")
    try:
        os.execve(executable, args, _env_dict(env))
    except OSError as exc:
        raise InitFailed(f"exec {args[0]}: {os.strerror(exc.errno).lower()}",
                         exec_exit_code(exc.errno)) from None


def _preload(spec: dict):
    """Import now what runs after pivot_root: the host's Python files vanish with it."""
    process = spec.get("process") or {}
    if process.get("rlimits"):
        import resource  # noqa: F401
    if process.get("terminal"):
        import fcntl  # noqa: F401
        import socket  # noqa: F401
        import struct  # noqa: F401
        import termios  # noqa: F401
    from minibox.runtime import security

    prepare = getattr(security, "prepare", None)
    if prepare is not None:
        prepare(process, spec.get("linux") or {})
    return security


def namespaces_has(linux: dict, kind: str) -> bool:
    return any(ns["type"] == kind and not ns.get("path") for ns in linux.get("namespaces") or [])


def _prepare_cwd(rootfs: str, cwd: str) -> None:
    """Create the working directory like docker does; a non-directory is an error (125)."""
    from minibox.runtime.paths import make_path

    try:
        make_path(rootfs, cwd)
    except OSError as exc:
        raise InitFailed(f"cannot use {cwd} as working directory: {os.strerror(exc.errno).lower()}",
                         EXIT_RUNTIME) from None


# <asm-generic/ioctls.h>; Python's termios module does not export them.
_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


def _setup_console(sock) -> None:
    """Make a pty in the container's own devpts and hand the master to the runtime."""
    import fcntl
    import socket
    import struct

    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))  # unlockpt()
    number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))[0]  # ptsname()
    slave_path = f"/dev/pts/{number}"
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    socket.send_fds(sock, [b"M"], [master])
    os.close(master)
    sock.recv(1)  # the runtime has set the window size
    sock.close()
    sc.set_controlling_tty(slave)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)


_RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


def _set_rlimits(rlimits: list[dict]) -> None:
    if not rlimits:
        return
    import resource

    for rl in rlimits:
        kind = _RLIMITS.get(rl["type"])
        if kind is None:
            raise InitFailed(f"unknown rlimit {rl['type']}")
        soft, hard = rl["soft"], rl["hard"]
        try:
            resource.setrlimit(kind, (soft, hard))
        except (OSError, ValueError) as exc:
            # Without CAP_SYS_RESOURCE (some hosts withhold it even from root)
            # a hard limit cannot be raised: keep the host's ceiling instead.
            _cur_soft, cur_hard = resource.getrlimit(kind)
            if hard <= cur_hard and cur_hard != resource.RLIM_INFINITY:
                raise InitFailed(f"setrlimit {rl['type']}: {exc}") from None
            resource.setrlimit(kind, (min(soft, cur_hard), cur_hard))


def _env_dict(env: list[str]) -> dict:
    result = {}
    for item in env:
        key, _, value = item.partition("=")
        result[key] = value
    return result


def _lookup(name: str, env: list[str]) -> str:
    """Find the command as execvp would, in the container's PATH (docker: 127 if absent)."""
    if "/" in name:
        return name
    path = _env_dict(env).get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise InitFailed(f"exec {name}: executable file not found in $PATH", EXIT_NOT_FOUND)


def _switch_user(user: dict) -> None:
    uid = int(user.get("uid", 0))
    gid = int(user.get("gid", 0))
    groups = [int(g) for g in user.get("additionalGids") or []]
    sc.setgroups(groups)
    sc.setresgid(gid)
    sc.setresuid(uid)


def _close_extra_fds() -> None:
    """Only 0, 1 and 2 may cross execve; the error pipe is close-on-exec."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                flags = os.get_inheritable(fd)
            except OSError:
                continue
            if flags:
                os.set_inheritable(fd, False)
