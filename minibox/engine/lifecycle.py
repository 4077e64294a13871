"""stop, kill, wait, pause, unpause: acting on a running container from another process.

The container's monitor (or the foreground ``run``) records the exit; these
verbs signal the init and wait for that record, so what they report is what
``ps`` and ``inspect`` will show.
"""

import os
import signal
import time

from minibox.engine import containers, records
from minibox.errors import InvalidTransition, NotFound, UsageError

_SIGNALS = {name[3:]: getattr(signal, name) for name in dir(signal)
            if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(getattr(signal, name), int)}


def parse_signal(value: str) -> int:
    """``TERM``, ``SIGTERM``, ``15`` -> 15 (docker accepts all three)."""
    v = value.upper()
    if v.isdigit() and 0 < int(v) < 65:
        return int(v)
    v = v[3:] if v.startswith("SIG") else v
    if v in _SIGNALS:
        return _SIGNALS[v]
    raise UsageError(f"Invalid signal: {value}")


def wait_exit(root: str, cid: str, timeout: float | None = None) -> dict | None:
    """Block until the container's record says it exited; return the record (None on timeout).

    A pidfd wakes us the moment the init dies; the monitor then needs a few
    milliseconds to write the exit record, which we poll for.
    """
    rec = records.load(root, cid)
    deadline = None if timeout is None else time.monotonic() + timeout
    state = rec["state"]
    if state["status"] in ("running", "paused") and state.get("pid"):
        try:
            pidfd = os.pidfd_open(state["pid"])
        except OSError:
            pidfd = None
        if pidfd is not None:
            import select

            try:
                if records.is_alive(state["pid"], state.get("pid_start")):
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    ready, _, _ = select.select([pidfd], [], [], left)
                    if not ready:
                        return None
            finally:
                os.close(pidfd)
    delay = 0.002
    while True:
        rec = records.load(root, cid)
        if rec["state"]["status"] not in ("running", "paused"):
            return rec
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def kill(root: str, ref: str, sig: int) -> str:
    cid = records.resolve(root, ref)
    rec = records.load(root, cid)
    if rec["state"]["status"] not in ("running", "paused"):
        raise InvalidTransition(f"cannot kill container: {ref}: container {cid} is not running")
    _signal(root, rec, sig)
    return cid


def _signal(root: str, rec: dict, sig: int) -> None:
    """Signal the init; a paused container is thawed to receive it (as docker's kill) and says so."""
    containers.kill(rec, sig)
    if rec["state"]["status"] != "paused":
        return
    try:
        with records.locked(root, rec["id"]):
            current = records.load(root, rec["id"])
            if current["state"]["status"] == "paused":
                current["state"].update(status="running", paused=False)
                records.save(root, current)
    except NotFound:
        pass  # it exited and was removed meanwhile


def stop(root: str, ref: str, timeout: int | None = None, sig: str | None = None) -> str:
    """docker stop: the stop signal, then SIGKILL after the timeout (default 10 s)."""
    cid = records.resolve(root, ref)
    rec = records.load(root, cid)
    if rec["state"]["status"] not in ("running", "paused"):
        return cid
    stop_signal = parse_signal(sig or rec["config"].get("StopSignal") or "SIGTERM")
    if timeout is None:
        timeout = rec["config"].get("StopTimeout")
        timeout = 10 if timeout is None else timeout
    _signal(root, rec, stop_signal)
    if wait_exit(root, cid, timeout) is None:
        containers.kill(records.load(root, cid), signal.SIGKILL)
        wait_exit(root, cid, 30)
    return cid


def pause(root: str, ref: str, frozen: bool) -> str:
    cid = records.resolve(root, ref)
    rec = records.load(root, cid)
    status = rec["state"]["status"]
    if frozen and status != "running":
        raise InvalidTransition(f"container {cid} is not running" if status != "paused"
                                else f"container {cid} is already paused")
    if not frozen and status != "paused":
        raise InvalidTransition(f"container {cid} is not paused")
    cg = containers._open_cgroup(rec)
    if cg is None:
        raise InvalidTransition(f"container {cid} has no cgroup to freeze")
    cg.freeze() if frozen else cg.thaw()
    rec["state"]["status"] = "paused" if frozen else "running"
    rec["state"]["paused"] = frozen
    records.save(root, rec)
    return cid
