"""``run -d`` / ``start``: a per-container monitor process instead of a daemon.

The CLI forks; the child starts a new session, starts the container with its
stdout and stderr on pipes and execs the C monitor, which stays behind as
the container's parent (well under 1 MB resident): it writes the output to
``<id>-json.log`` in docker's json-file format, reaps the init, writes the
exit file and execs ``minibox _finish`` to record it. The monitor says
"ready" (or the child says why not) over a pipe; the CLI then prints the id
and returns.
"""

import json
import os
import sys

from minibox.engine import containers, records
from minibox.errors import MiniboxError

_READY = b"1"  # what minibox-monitor writes to --ready-fd once it watches the container


def start_detached(root: str, rec: dict, trace=None) -> None:
    """Start ``rec`` under a monitor; return once it runs, raise MiniboxError if it cannot."""
    notify_r, notify_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(notify_r)
        _monitor(root, rec, notify_w, trace)  # never returns
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


def _monitor(root: str, rec: dict, notify_w: int, trace=None) -> None:
    """The forked child: start the container as our child, then become minibox-monitor.

    exec keeps our pid and our children, so the container stays the child of
    the small C monitor (csrc/monitor.c), which logs, reaps and writes the
    exit file, then execs ``minibox _finish ID`` to record it and clean up.
    """
    try:
        from minibox import libexec
        from minibox import syscalls as sc

        os.setsid()
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        monitor = libexec.path(libexec.MONITOR)
        devnull = os.open("/dev/null", os.O_RDWR)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        # Our fd 2 is still the CLI's stderr here: trace lines (run -d --trace) reach the user.
        init = containers.start(root, rec, stdio=(devnull, out_w, err_w), trace=trace)
        os.close(out_w)
        os.close(err_w)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.chdir("/")
        for fd in (out_r, err_r, notify_w):
            os.set_inheritable(fd, True)
        cdir = records.container_dir(root, rec["id"])
        os.execv(monitor, [
            monitor, "--pid", str(init.pid),
            "--log", os.path.join(cdir, f"{rec['id']}-json.log"),
            "--exit-file", os.path.join(cdir, records.EXIT_FILE),
            "--stdout-fd", str(out_r), "--stderr-fd", str(err_r), "--ready-fd", str(notify_w),
            "--", sys.executable, "-m", "minibox", "--root", root, "_finish", rec["id"],
        ])
    except MiniboxError as exc:
        _tell(notify_w, str(exc), exc.exit_code)
    except BaseException as exc:  # noqa: BLE001 - the CLI must hear about it
        _tell(notify_w, f"{exc.__class__.__name__}: {exc}", 125)
    os._exit(1)


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
