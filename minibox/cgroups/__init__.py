"""Cgroups: one driver interface, a v2 (unified) and a v1 (legacy) implementation.

The version is probed once, by :func:`open_driver`; callers never branch on
it. A hybrid host (v1 controllers mounted, plus a cgroup2 mount with no
controllers, as systemd sets up in "hybrid" mode) is driven as v1, because
the controllers that limit anything live in the v1 hierarchies.

Paths follow the OCI ``linux.cgroupsPath`` rules: an absolute path is taken
from the hierarchy root; a relative one is placed under the cgroup the
runtime itself runs in (read from /proc/self/cgroup, per controller on v1),
so minibox never needs to own the hierarchy root and nests properly inside
a supervisor's cgroup.
"""

from __future__ import annotations  # the Cgroup/CgroupDriver protocols live in interface.py

import os
import posixpath

from minibox.errors import MiniboxError

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms on every start
if TYPE_CHECKING:
    from minibox.cgroups.interface import CgroupDriver

DEFAULT_ROOT = "/sys/fs/cgroup"
# The parent of containers' cgroups when --cgroup-parent is not given
# (override: MINIBOX_CGROUP_PARENT). On v1 it is relative, so it lands under
# minibox's own cgroup in each hierarchy (a supervisor's limits still hold).
# On v2 it is absolute, as docker's /docker is: the cgroup minibox runs in
# usually holds processes (a login scope, a service), and the no-internal-
# process rule forbids giving controllers to children of such a cgroup.
DEFAULT_PARENT = "minibox"
DEFAULT_PARENT_V2 = "/minibox"


def read_self_cgroup(proc_file: str = "/proc/self/cgroup") -> dict[str, str]:
    """/proc/self/cgroup → {controller: path}; the v2 entry is keyed ``""``.

    ``4:memory:/process_api/x`` → {"memory": "/process_api/x"};
    ``1:cpu,cpuacct:/`` → both controllers; ``0::/user.slice`` → {"": ...}.
    """
    out: dict[str, str] = {}
    with open(proc_file) as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) != 3:
                continue
            _, ctrls, path = parts
            if not ctrls:
                out[""] = path
            for c in ctrls.split(","):
                if c:
                    out[c.removeprefix("name=")] = path
    return out


def resolve(path: str, own: str) -> str:
    """A cgroupsPath → the path from the hierarchy root (relative → under ``own``)."""
    if not path:
        raise MiniboxError("empty cgroup path")
    joined = path if path.startswith("/") else posixpath.join(own or "/", path)
    norm = posixpath.normpath(joined)
    if norm in ("/", "//") or ".." in path.split("/"):
        raise MiniboxError(f"invalid cgroup path {path!r}: must name a cgroup below the root")
    return norm


def detect(root: str = DEFAULT_ROOT) -> str:
    """``"v2"``, ``"v1"`` (also for hybrid) or ``"none"``, from what is mounted at ``root``."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return "v2"
    from minibox.cgroups.v1 import find_mounts

    if find_mounts(root):
        return "v1"
    unified = os.path.join(root, "unified", "cgroup.controllers")
    if os.path.exists(unified):
        return "v2-hybrid-only"
    return "none"


_drivers: dict[str, CgroupDriver] = {}


def open_driver(root: str = DEFAULT_ROOT, proc_self_cgroup: str = "/proc/self/cgroup") -> CgroupDriver:
    """The driver for this host, probed once per ``root`` and cached."""
    key = f"{root}\0{proc_self_cgroup}"
    if key in _drivers:
        return _drivers[key]
    kind = detect(root)
    own = read_self_cgroup(proc_self_cgroup)
    if kind == "v2":
        from minibox.cgroups.v2 import V2Driver

        drv = V2Driver(root, own.get("", "/"))
    elif kind == "v1":
        from minibox.cgroups.v1 import V1Driver

        drv = V1Driver(root, own)
    elif kind == "v2-hybrid-only":
        # Hybrid mount with no v1 controllers left: the unified tree is all there is.
        from minibox.cgroups.v2 import V2Driver

        drv = V2Driver(os.path.join(root, "unified"), own.get("", "/"))
    else:
        raise MiniboxError(f"no cgroup hierarchy mounted at {root} (need cgroup2 or the v1 controllers)")
    _drivers[key] = drv
    return drv


def cgroups_path(parent: str | None, container_id: str, root: str = DEFAULT_ROOT) -> str:
    """linux.cgroupsPath for a container: ``<parent>/<id>`` (docker's cgroupfs layout).

    ``parent`` is --cgroup-parent; else $MINIBOX_CGROUP_PARENT; else the
    default for the host's cgroup version (see DEFAULT_PARENT).
    """
    parent = parent or os.environ.get("MINIBOX_CGROUP_PARENT")
    if not parent:
        parent = DEFAULT_PARENT_V2 if detect(root) == "v2" else DEFAULT_PARENT
    return posixpath.join(parent, container_id)


def remove_leftover(path: str, root: str = DEFAULT_ROOT) -> bool:
    """Destroy the cgroup at a cgroupsPath if it still exists; True if there was one.

    For cleanup when a record lost its saved paths() (the runtime was killed
    between creating the cgroup and saving the record): processes still in
    it are killed first. A relative path resolves under *this* process's
    cgroup, so it finds what a minibox started from the same cgroup created.
    """
    cg = open_driver(root).find(path)
    if cg is None:
        return False
    cg.destroy()
    return True


def prune_empty(parent: str | None = None, min_age: float = 60.0, root: str = DEFAULT_ROOT) -> list[str]:
    """Remove the empty child cgroups of ``parent`` (default: minibox's); returns their names.

    For ``system prune``: a container's cgroup that outlived its record (a
    runtime killed at the wrong moment) holds no process and is never
    reused. Several minibox roots can share one cgroup parent, so nothing
    with a process is touched, and nothing younger than ``min_age`` seconds
    (a container being created right now has no process yet for a moment).
    """
    import time

    parent = parent or os.environ.get("MINIBOX_CGROUP_PARENT")
    if not parent:
        parent = DEFAULT_PARENT_V2 if detect(root) == "v2" else DEFAULT_PARENT
    drv = open_driver(root)
    top = drv.find(parent)
    if top is None:
        return []
    names = set()
    for d in set(top.paths().values()):
        try:
            names |= {e.name for e in os.scandir(d) if e.is_dir(follow_symlinks=False)}
        except FileNotFoundError:
            continue
    removed = []
    now = time.time()
    for name in sorted(names):
        cg = drv.find(posixpath.join(parent, name))
        if cg is None or cg.pids():
            continue
        try:
            newest = max(os.stat(p).st_mtime for p in cg.paths().values())
        except FileNotFoundError:
            continue
        if now - newest < min_age:
            continue
        cg.destroy()
        removed.append(name)
    return removed
