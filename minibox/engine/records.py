"""Container records: one ``container.json`` per container, refreshed from the kernel.

A record is never trusted alone: a "running" container whose pid is gone, or
whose pid now belongs to another process (a different start time), is
reported as exited. Names are reserved atomically with a symlink in
``<root>/names`` so two concurrent ``run --name x`` cannot both win.
"""

import errno
import json
import os

from minibox.atomic import write_json
from minibox.errors import Conflict, MiniboxError, NotFound
from minibox.runtime.procfs import pid_start_time

RECORD = "container.json"
EXIT_FILE = "exit.json"
STARTING = "starting"  # "<pid> <start time>" of the process inside containers.start()


def containers_dir(root: str) -> str:
    return os.path.join(root, "containers")


def container_dir(root: str, cid: str) -> str:
    return os.path.join(root, "containers", cid)


def ensure_root(root: str) -> None:
    """Create the state root and its top dirs, mode 0700 (container state is private)."""
    for sub in ("", "containers", "names", "volumes"):
        path = os.path.join(root, sub)
        try:
            os.makedirs(path, mode=0o700, exist_ok=False)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)


class locked:
    """Hold an exclusive flock on a container's dir while its record and resources change.

    The monitor recording an exit and a concurrent ``rm -f`` would otherwise
    both tear down the same cgroup and mounts. Raises NotFound if the
    container is gone (or goes while we wait).
    """

    def __init__(self, root: str, cid: str):
        self.root, self.cid = root, cid
        self.fd = -1

    def __enter__(self):
        import fcntl

        try:
            self.fd = os.open(container_dir(self.root, self.cid), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"No such container: {self.cid}") from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        if not os.path.isdir(container_dir(self.root, self.cid)):
            os.close(self.fd)
            raise NotFound(f"No such container: {self.cid}")
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        return False


def new_id() -> str:
    return os.urandom(32).hex()


def is_alive(pid: int | None, start: int | None) -> bool:
    return bool(pid) and start is not None and pid_start_time(pid) == start


def save(root: str, rec: dict) -> None:
    write_json(os.path.join(container_dir(root, rec["id"]), RECORD), rec, durable=False)


def load(root: str, cid: str) -> dict:
    """Load and refresh one record by full id."""
    path = os.path.join(container_dir(root, cid), RECORD)
    try:
        with open(path, "rb") as f:
            rec = json.load(f)
    except FileNotFoundError:
        raise NotFound(f"No such container: {cid}") from None
    except ValueError as exc:
        raise MiniboxError(f"corrupt record {path}: {exc}") from None
    return refresh(root, rec)


def mark_starting(root: str, cid: str) -> None:
    """Name the process that is starting ``cid``, until its record says "running".

    Between fork and the "running" record, the cgroup, the mount and the veth
    are known only to that process; if it is killed, :func:`refresh` sees
    the marker of a dead process and flags the record for clean-up. Not
    fsynced: the marker only matters while its writer lives.
    """
    path = os.path.join(container_dir(root, cid), STARTING)
    me = os.getpid()
    with open(path, "w") as f:
        f.write(f"{me} {pid_start_time(me)}")


def clear_starting(root: str, cid: str) -> None:
    try:
        os.unlink(os.path.join(container_dir(root, cid), STARTING))
    except FileNotFoundError:
        pass


def _start_interrupted(root: str, cid: str) -> bool:
    try:
        with open(os.path.join(container_dir(root, cid), STARTING)) as f:
            pid, _, start = f.read().partition(" ")
        return not is_alive(int(pid), int(start))
    except (OSError, ValueError):
        return False


def refresh(root: str, rec: dict) -> dict:
    """Bring a record's state in line with the kernel (see module docstring)."""
    state = rec["state"]
    if state["status"] == "created" and _start_interrupted(root, rec["id"]):
        # docker shows a container whose start failed as Created, with the error.
        state.update(exit_code=128, error="the start of the container was interrupted", needs_cleanup=True)
        return rec
    if state["status"] in ("running", "paused") and not is_alive(state.get("pid"), state.get("pid_start")):
        if is_alive(state.get("monitor_pid"), state.get("monitor_start")):
            return rec  # the init just exited; its monitor is recording the exit right now
        state.update(status="exited", running=False, pid=0)
        exit_info = read_exit_file(root, rec["id"])
        if exit_info:
            state["exit_code"] = exit_info.get("exit_code", 137)
            state["finished_at"] = exit_info.get("finished_at", state.get("finished_at"))
            state["oom_killed"] = bool(exit_info.get("oom_killed", state.get("oom_killed")))
        else:
            # The process that watched it died; the init died with it (pdeathsig SIGKILL).
            state["exit_code"] = 137
            state["error"] = "the container's monitor died"
            from minibox.engine.timefmt import now_rfc3339

            state["finished_at"] = now_rfc3339()
        state["needs_cleanup"] = True
    return rec


def read_exit_file(root: str, cid: str) -> dict | None:
    try:
        with open(os.path.join(container_dir(root, cid), EXIT_FILE), "rb") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def list_ids(root: str) -> list[str]:
    try:
        return [n for n in os.listdir(containers_dir(root)) if len(n) == 64]
    except FileNotFoundError:
        return []


def load_all(root: str) -> list[dict]:
    result = []
    for cid in list_ids(root):
        try:
            result.append(load(root, cid))
        except NotFound:
            continue  # removed while we listed
    return result


def resolve(root: str, ref: str) -> str:
    """A container's full id from a full id, a unique id prefix or a name."""
    if not ref:
        raise NotFound("No such container: ")
    name = ref.lstrip("/")
    link = os.path.join(root, "names", name)
    try:
        cid = os.readlink(link)
        if os.path.isdir(container_dir(root, cid)):
            return cid
    except OSError:
        pass
    if all(c in "0123456789abcdef" for c in ref):
        matches = [cid for cid in list_ids(root) if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise MiniboxError(f"multiple IDs found with provided prefix: {ref}")
    raise NotFound(f"No such container: {ref}")


def reserve_name(root: str, name: str | None, cid: str) -> str:
    """Atomically claim ``name`` for ``cid`` (or a generated one); Conflict if taken."""
    if name is not None:
        _check_name(name)
    for _ in range(100):
        candidate = name or _random_name()
        link = os.path.join(root, "names", candidate)
        try:
            os.symlink(cid, link)
            return candidate
        except FileExistsError:
            owner = os.readlink(link)
            if not os.path.isdir(container_dir(root, owner)):
                # Left behind by a create that crashed before its dir existed.
                try:
                    os.unlink(link)
                except FileNotFoundError:
                    pass
                continue
            if name is not None:
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{owner}". You have to remove (or rename) that container to be able to '
                    "reuse that name.") from None
    raise MiniboxError("could not generate a unique container name")


def release_name(root: str, name: str, cid: str) -> None:
    link = os.path.join(root, "names", name)
    try:
        if os.readlink(link) == cid:
            os.unlink(link)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EINVAL):
            raise


def _check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise MiniboxError(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')


_ADJECTIVES = ("admiring", "bold", "brave", "busy", "clever", "eager", "focused", "gallant",
               "happy", "jolly", "keen", "lucid", "nifty", "quirky", "serene", "tender",
               "upbeat", "vibrant", "wizardly", "zealous")
_NAMES = ("babbage", "curie", "dijkstra", "einstein", "hopper", "kalam", "knuth", "lamport",
          "liskov", "lovelace", "noether", "pike", "ritchie", "shannon", "thompson", "torvalds",
          "turing", "wozniak", "yalow", "hamilton")


def _random_name() -> str:
    # os.urandom, not the random module: that one costs 2.5 ms to import.
    pick = int.from_bytes(os.urandom(4), "little")
    return f"{_ADJECTIVES[pick % len(_ADJECTIVES)]}_{_NAMES[(pick >> 16) % len(_NAMES)]}"
