"""State of containers run directly from a bundle (``minibox runtime``), as runc keeps it.

One ``state.json`` per container id under ``<root>/runtime/<id>``: the OCI
state (id, status, pid, bundle) plus what ``delete`` needs (the cgroup paths)
and the pid's start time, so a recycled pid is never taken for the container.
"""

import json
import os
import re

from minibox.atomic import write_json
from minibox.errors import Conflict, NotFound, UsageError
from minibox.runtime.procfs import pid_start_time

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")


def state_dir(root: str, cid: str) -> str:
    if not _ID.fullmatch(cid):
        raise UsageError(f"invalid container id: {cid!r}")
    return os.path.join(root, "runtime", cid)


def create_dir(root: str, cid: str) -> str:
    """Claim ``cid`` (Conflict if it exists); the dir is 0700 like all state."""
    base = os.path.join(root, "runtime")
    os.makedirs(base, mode=0o700, exist_ok=True)
    path = state_dir(root, cid)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        raise Conflict(f"container with id exists: {cid}") from None
    return path


def save(root: str, state: dict) -> None:
    write_json(os.path.join(state_dir(root, state["id"]), "state.json"), state, durable=False)


def load(root: str, cid: str) -> dict:
    """The state of ``cid``, with ``status`` refreshed from the kernel."""
    try:
        with open(os.path.join(state_dir(root, cid), "state.json"), "rb") as f:
            state = json.load(f)
    except FileNotFoundError:
        raise NotFound(f"container does not exist: {cid}") from None
    if state["status"] in ("created", "running") and pid_start_time(state["pid"]) != state.get("pid_start"):
        state["status"] = "stopped"
    return state


def list_ids(root: str) -> list[str]:
    try:
        return sorted(os.listdir(os.path.join(root, "runtime")))
    except FileNotFoundError:
        return []


def public(state: dict) -> dict:
    """The OCI runtime-spec state object (what ``runc state`` prints)."""
    return {"ociVersion": state.get("ociVersion", "1.0.2"), "id": state["id"], "status": state["status"],
            "pid": state["pid"] if state["status"] != "stopped" else 0, "bundle": state["bundle"],
            "annotations": state.get("annotations", {})}
