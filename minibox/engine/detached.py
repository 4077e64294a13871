"""``run -d`` / ``start``: a per-container monitor process instead of a daemon.

The CLI forks; the child starts a new session, starts the container with its
stdout and stderr on pipes and execs the C monitor, which stays behind as
the container's parent (well under 1 MB resident): it writes the output to
``<id>-json.log`` in docker's json-file format, reaps the init, writes the
exit file and execs ``minibox _finish`` to record it. The monitor says
"ready" (or the child says why not) over a pipe; the CLI then prints the id
and returns. The monitor also listens on ``attach.sock`` in the container's
dir: ``attach`` and ``start -a`` are its clients (see engine/attach.py).
"""

import json
import os
import sys

from minibox.engine import containers, records
from minibox.errors import MiniboxError

_READY = b"1"  # what minibox-monitor writes to --ready-fd once it watches the container


ATTACH_SOCKET = "attach.sock"  # in the container's dir; the monitor listens on it
_DEFAULT_WINSIZE = b"\x18\x00\x50\x00\x00\x00\x00\x00"  # 24 rows, 80 columns


def attach_address(dirfd: int) -> str:
    """The attach socket's path through an fd on the container's dir.

    sun_path holds 108 bytes; ``<root>/containers/<64 hex>/attach.sock``
    does not fit under a longer --root, ``/proc/self/fd/N/attach.sock`` always does.
    """
    return f"/proc/self/fd/{dirfd}/{ATTACH_SOCKET}"


def start_detached(root: str, rec: dict, trace=None, *, attached: bool = False) -> None:
    """Start ``rec`` under a monitor; return once it runs, raise MiniboxError if it cannot.

    ``attached``: a client (``start -a``) connects right away: the monitor
    holds the output until it has, and with -i closes the container's stdin
    when the client's input ends (docker's StdinOnce).
    """
    notify_r, notify_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(notify_r)
        _monitor(root, rec, notify_w, attached, trace)  # never returns
    os.close(notify_w)
    report = b""
    while True:
        chunk = os.read(notify_r, 4096)
        if not chunk:
            break
        report += chunk
    os.close(notify_r)
    if report != _READY:
        try:
            info = json.loads(report.decode() or "{}")
        except ValueError:
            info = {}
        os.waitpid(pid, 0)
        raise MiniboxError(info.get("message") or "container monitor died before the container started",
                           info.get("exit_code", 125))


def _monitor(root: str, rec: dict, notify_w: int, attached: bool, trace=None) -> None:
    """The forked child: start the container as our child, then become minibox-monitor.

    exec keeps our pid and our children, so the container stays the child of
    the small C monitor (csrc/monitor.c), which logs, reaps and writes the
    exit file, then execs ``minibox _finish ID`` to record it and clean up.
    The container's stdin is /dev/null, or with -i a pipe the monitor feeds
    from attached clients; with -t its stdio is a pty whose master the
    monitor reads and writes.
    """
    try:
        from minibox import libexec
        from minibox import syscalls as sc

        os.setsid()
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        monitor = libexec.path(libexec.MONITOR)
        cdir = records.container_dir(root, rec["id"])
        interactive = bool(rec["config"].get("OpenStdin"))
        devnull = os.open("/dev/null", os.O_RDWR)
        keep = [notify_w]
        # Our fd 2 is still the CLI's stderr here: trace lines (run -d --trace) reach the user.
        if rec["config"].get("Tty"):
            init = containers.start(root, rec, stdio=(devnull, devnull, devnull), winsize=_DEFAULT_WINSIZE,
                                    trace=trace)
            master = init.console_fd
            stdio_args = ["--tty", "--stdout-fd", str(master)]
            keep.append(master)
            if interactive:
                in_w = os.dup(master)
                stdio_args += ["--stdin-fd", str(in_w)]
                keep.append(in_w)
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            in_r, in_w = os.pipe2(os.O_CLOEXEC) if interactive else (devnull, -1)
            init = containers.start(root, rec, stdio=(in_r, out_w, err_w), trace=trace)
            for fd in (out_w, err_w) + ((in_r,) if interactive else ()):
                os.close(fd)
            stdio_args = ["--stdout-fd", str(out_r), "--stderr-fd", str(err_r)]
            keep += [out_r, err_r]
            if interactive:
                stdio_args += ["--stdin-fd", str(in_w)]
                keep.append(in_w)
        if attached:
            stdio_args.append("--wait-attach")
            if interactive:
                stdio_args.append("--stdin-once")
        dirfd = os.open(cdir, os.O_PATH | os.O_DIRECTORY)
        keep.append(dirfd)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.chdir("/")
        for fd in keep:
            os.set_inheritable(fd, True)
        _pin_import_path()
        os.execv(monitor, [
            monitor, "--pid", str(init.pid),
            "--log", os.path.join(cdir, f"{rec['id']}-json.log"),
            "--exit-file", os.path.join(cdir, records.EXIT_FILE),
            *stdio_args, "--attach-socket", attach_address(dirfd), "--ready-fd", str(notify_w),
            "--", sys.executable, "-m", "minibox", "--root", root, "_finish", rec["id"],
        ])
    except MiniboxError as exc:
        _tell(notify_w, str(exc), exc.exit_code)
    except BaseException as exc:  # noqa: BLE001 - the CLI must hear about it
        _tell(notify_w, f"{exc.__class__.__name__}: {exc}", 125)
    os._exit(1)


def _pin_import_path() -> None:
    """Let ``python -m minibox _finish`` find this very package after our chdir("/").

    A relative PYTHONPATH (a dev tree run as ``PYTHONPATH=. python3 -m
    minibox``) means nothing from "/": the exit would never be recorded and
    the container's cgroup and mount would stay until ``rm -f``.
    """
    import minibox

    here = os.path.dirname(os.path.dirname(os.path.abspath(minibox.__file__)))
    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([here] + [p for p in paths if p != here])


def _tell(fd: int, message: str, code: int) -> None:
    try:
        os.write(fd, json.dumps({"message": message, "exit_code": code}).encode())
    except OSError:
        pass


def finish_from_exit_file(root: str, cid: str) -> None:
    """``minibox _finish ID``: what the monitor execs once the container has exited."""
    rec = records.load(root, cid)
    info = records.read_exit_file(root, cid) or {}
    containers.finish(root, rec, info.get("exit_code", 137))
