"""``run -d`` / ``start``: a per-container monitor process instead of a daemon.

The CLI forks; the child starts a new session, starts the container with its
stdout and stderr on pipes, tells the CLI "started" (or the error) over a
pipe, and then stays behind as the container's parent: it writes the output
to ``<id>-json.log`` in docker's json-file format, reaps the init and records
the exit. The CLI prints the id and returns at once.
"""

import json
import os

from minibox.engine import containers, records
from minibox.errors import MiniboxError


def start_detached(root: str, rec: dict) -> None:
    """Start ``rec`` under a monitor; return once it runs, raise MiniboxError if it cannot."""
    notify_r, notify_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(notify_r)
        _monitor(root, rec, notify_w)  # never returns
    os.close(notify_w)
    report = b""
    while True:
        chunk = os.read(notify_r, 4096)
        if not chunk:
            break
        report += chunk
    os.close(notify_r)
    if report != b"OK":
        try:
            info = json.loads(report.decode() or "{}")
        except ValueError:
            info = {}
        os.waitpid(pid, 0)
        raise MiniboxError(info.get("message") or "container monitor died before the container started",
                           info.get("exit_code", 125))


def _monitor(root: str, rec: dict, notify_w: int) -> None:
    code = 0
    try:
        os.setsid()
        devnull = os.open("/dev/null", os.O_RDWR)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            init = containers.start(root, rec, stdio=(devnull, out_w, err_w))
        except MiniboxError as exc:
            os.write(notify_w, json.dumps({"message": str(exc), "exit_code": exc.exit_code}).encode())
            os._exit(1)
        except BaseException as exc:  # noqa: BLE001 - the CLI must hear about it
            os.write(notify_w, json.dumps({"message": str(exc), "exit_code": 125}).encode())
            os._exit(1)
        os.close(out_w)
        os.close(err_w)
        # Detach from the CLI's terminal and files for good.
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.write(notify_w, b"OK")
        os.close(notify_w)
        log_path = os.path.join(records.container_dir(root, rec["id"]), f"{rec['id']}-json.log")
        copy_to_log(log_path, {out_r: "stdout", err_r: "stderr"})
        _, status = os.waitpid(init.pid, 0)
        exit_code = os.waitstatus_to_exitcode(status)
        exit_code = 128 - exit_code if exit_code < 0 else exit_code
        containers.finish(root, records.load(root, rec["id"]), exit_code, init.cgroup)
    except BaseException:  # noqa: BLE001 - a monitor has nobody to report to
        code = 1
    os._exit(code)


def copy_to_log(path: str, streams: dict[int, str]) -> None:
    """Append each line read from ``streams`` to ``path`` as a docker json-file entry."""
    import select

    from minibox.engine.timefmt import now_rfc3339

    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    partial = {fd: b"" for fd in streams}
    try:
        while streams:
            ready, _, _ = select.select(list(streams), [], [])
            for fd in ready:
                data = os.read(fd, 65536)
                lines = (partial[fd] + data).split(b"\n") if data else [partial[fd]]
                if data:
                    partial[fd] = lines.pop()
                else:
                    lines = [lines[0]] if lines[0] else []
                entries = []
                for line in lines:
                    text = line.decode("utf-8", errors="replace") + ("\n" if data else "")
                    entries.append(json.dumps({"log": text, "stream": streams[fd], "time": now_rfc3339()}))
                if entries:
                    os.write(log, ("\n".join(entries) + "\n").encode())
                if not data:
                    os.close(fd)
                    del streams[fd]
    finally:
        os.close(log)
