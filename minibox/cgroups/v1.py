"""cgroup v1: one hierarchy per controller (or per co-mounted group of them).

A container gets one directory per hierarchy, each placed under the
runtime's own cgroup *in that hierarchy* (they differ: on this development
host the memory controller puts us in /process_api/<id> while the others
say /). Two v1 quirks are handled here: a new cpuset cgroup starts with
empty cpus/mems and refuses tasks until they are filled (copied from the
parent, as runc does), and memory.memsw.* is absent when swap accounting
is off (the swap limit is then skipped with a warning, as docker does).
"""

import errno
import os
import signal

from minibox.cgroups import fs, resolve
from minibox.cgroups.convert import controller_of, v1_writes
from minibox.errors import MiniboxError, SyscallError

# Controllers a container gets a directory in (named hierarchies such as
# name=systemd, and net_cls/perf_event..., are not used by minibox).
WANTED = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")


def find_mounts(root: str) -> dict[str, str]:
    """{controller: hierarchy dir} for the v1 hierarchies under ``root``.

    Directory names carry the controllers (``cpu,cpuacct``), which is how
    every distro and systemd lay them out; symlinks such as cpu →
    cpu,cpuacct resolve to the same hierarchy.
    """
    out: dict[str, str] = {}
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        if not entry.is_dir() or entry.name == "unified":
            continue
        real = os.path.realpath(entry.path)
        if not os.path.exists(os.path.join(real, "cgroup.procs")) or os.path.exists(
            os.path.join(real, "cgroup.controllers")
        ):
            continue
        for ctrl in os.path.basename(real).split(","):
            if ctrl in WANTED:
                out.setdefault(ctrl, real)
    return out


class V1Cgroup:
    """A container's cgroup: one directory per controller (co-mounted ones share it)."""

    def __init__(self, dirs: dict[str, str]):
        self.dirs = dict(dirs)

    def paths(self) -> dict[str, str]:
        return dict(self.dirs)

    def _unique_dirs(self) -> list[str]:
        return list(dict.fromkeys(self.dirs.values()))

    def _f(self, ctrl: str, name: str) -> str | None:
        d = self.dirs.get(ctrl)
        return os.path.join(d, name) if d else None

    def add(self, pid: int) -> None:
        for d in self._unique_dirs():
            fs.write(os.path.join(d, "cgroup.procs"), str(pid))

    def join_self(self) -> list[str]:
        """Move the calling process, single-threaded, in; returns the files written.

        It writes "0" (itself) to each hierarchy's ``tasks`` file rather than
        a pid to ``cgroup.procs``: a thread that moves itself is moved
        without write-locking the kernel's global cgroup_threadgroup_rwsem
        (see cgroup_procs_write_start() in kernel/cgroup/cgroup.c, since
        Linux 6.0), and that lock waits for an RCU grace period, 5 to 12 ms
        here: the largest single cost of a container's start. A process
        just forked has one thread, so moving it moves the whole process.
        """
        files = [os.path.join(d, "tasks") for d in self._unique_dirs()]
        for path in files:
            fs.write(path, "0")
        return files

    def apply(self, resources: dict, trace=None) -> list[str]:
        """Write the OCI resources; returns warnings for limits the host cannot hold.

        ``trace`` (``run --trace``) is called with each file written and its value.
        """
        warnings = []
        memsw = self._f("memory", "memory.memsw.limit_in_bytes")
        current = None
        if memsw and os.path.exists(memsw):
            current = fs.read_int(memsw)
            current = None if current >= (1 << 62) else current
        for name, value in v1_writes(resources, current):
            ctrl = controller_of(name)
            target = self._f(ctrl, name)
            if target is None:
                raise MiniboxError(f"cannot set {name}: the {ctrl} cgroup controller is not mounted")
            if not os.path.exists(target):
                if name.startswith("memory.memsw."):
                    warnings.append(
                        "swap limit ignored: the kernel has no swap accounting "
                        "(memory.memsw.limit_in_bytes missing; boot with swapaccount=1)"
                    )
                    continue
                raise MiniboxError(f"cannot set {name}: the kernel does not support it ({target} missing)")
            if trace:
                trace(f"cgroup write {target} = {value}")
            fs.write(target, value)
        return warnings

    def oom_killed(self) -> bool:
        """True once the OOM killer fired here: memory.oom_control's oom_kill (4.13+), else failcnt."""
        ctl = self._f("memory", "memory.oom_control")
        if not ctl:
            return False
        counters = fs.read_keyed(ctl)
        if "oom_kill" in counters:
            return counters["oom_kill"] > 0
        # Older kernels: hitting the limit is the best evidence left.
        return (fs.read_int(self._f("memory", "memory.failcnt"), 0) or 0) > 0

    def stats(self) -> dict:
        mem = fs.read_keyed(self._f("memory", "memory.stat")) if "memory" in self.dirs else {}

        def num(ctrl, name, default):
            p = self._f(ctrl, name)
            return fs.read_int(p, default) if p else default

        limit = num("memory", "memory.limit_in_bytes", -1)
        blkio = self._f("blkio", "blkio.throttle.io_service_bytes_recursive")
        io_read, io_write = fs.read_io(blkio, v2=False) if blkio else (0, 0)
        return {
            "io_read_bytes": io_read,
            "io_write_bytes": io_write,
            "cpu_usage_ns": num("cpuacct", "cpuacct.usage", 0),
            "memory_usage": num("memory", "memory.usage_in_bytes", 0),
            # v1 reports "unlimited" as a huge page-aligned number.
            "memory_limit": -1 if limit >= (1 << 62) else limit,
            "memory_inactive_file": mem.get("total_inactive_file", mem.get("inactive_file", 0)),
            "pids_current": num("pids", "pids.current", 0),
            "pids_limit": num("pids", "pids.max", -1),
        }

    def _task_dir(self) -> str | None:
        for ctrl in ("pids", "freezer", "memory", "cpu"):
            if ctrl in self.dirs:
                return self.dirs[ctrl]
        dirs = self._unique_dirs()
        return dirs[0] if dirs else None

    def pids(self) -> list[int]:
        d = self._task_dir()
        out = []
        for sub in fs.descendants(d) if d else []:
            out += fs.read_pids(os.path.join(sub, "cgroup.procs"))
        return out

    def freeze(self) -> None:
        state = self._f("freezer", "freezer.state")
        if not state:
            raise MiniboxError("cannot freeze: the freezer cgroup controller is not mounted")
        fs.write(state, "FROZEN")
        if not fs.wait_until(lambda: fs.read(state).strip() == "FROZEN", 5.0):
            fs.write(state, "THAWED")
            raise MiniboxError(f"cgroup {os.path.dirname(state)} did not freeze within 5s")

    def thaw(self) -> None:
        state = self._f("freezer", "freezer.state")
        if state:
            fs.write(state, "THAWED")

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Signal every task; frozen first so nothing forks past the list we read."""
        frozen = False
        if "freezer" in self.dirs and os.path.isdir(self.dirs["freezer"]):
            try:
                self.freeze()
                frozen = True
            except (MiniboxError, SyscallError):
                frozen = False
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                try:
                    self.thaw()
                except SyscallError as exc:
                    if exc.errno != errno.ENOENT:
                        raise

    def destroy(self) -> None:
        """Kill what is left, wait for it to exit, rmdir every controller's dir (idempotent)."""
        if self.pids():
            self.kill_all(signal.SIGKILL)
            if not fs.wait_until(lambda: not self.pids(), 5.0):
                raise MiniboxError(f"cgroup {self._task_dir()} still has processes after SIGKILL: {self.pids()}")
        for d in self._unique_dirs():
            fs.rmdir_tree(d)
            fs.remove_shared_parent(d)


class V1Driver:
    """Creates containers' cgroups across the v1 hierarchies under ``root``."""

    version = 1

    def __init__(self, root: str, own: dict[str, str]):
        self.root = root
        self.own = own
        self.mounts = find_mounts(root)

    def controllers(self) -> list[str]:
        return sorted(self.mounts)

    def _dirs(self, path: str) -> dict[str, str]:
        return {
            ctrl: os.path.join(mount, resolve(path, self.own.get(ctrl, "/")).lstrip("/"))
            for ctrl, mount in self.mounts.items()
        }

    def create(self, path: str) -> V1Cgroup:
        """mkdir the path in every hierarchy; cpuset levels inherit cpus/mems from their parent."""
        dirs = self._dirs(path)

        def make():
            for ctrl, target in dirs.items():
                mount = self.mounts[ctrl]
                current = mount
                for part in os.path.relpath(target, mount).split(os.sep):
                    parent, current = current, os.path.join(current, part)
                    created = fs.mkdir(current)
                    if ctrl == "cpuset" and created:
                        self._inherit_cpuset(parent, current)

        fs.retry_vanished(make)
        return V1Cgroup(dirs)

    @staticmethod
    def _inherit_cpuset(parent: str, child: str) -> None:
        # A fresh cpuset has empty cpus/mems and rejects tasks with ENOSPC.
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not fs.read(os.path.join(child, name)).strip():
                fs.write(os.path.join(child, name), fs.read(os.path.join(parent, name)).strip())

    def open(self, paths: dict[str, str]) -> V1Cgroup:
        """Reopen a cgroup from paths() saved in a record; refuses paths outside the mounts."""
        dirs = {}
        for ctrl, path in paths.items():
            path = os.path.normpath(path)
            mount = self.mounts.get(ctrl)
            if not mount or not path.startswith(mount.rstrip("/") + "/"):
                raise MiniboxError(f"cgroup path {path!r} is not below the {ctrl} hierarchy")
            dirs[ctrl] = path
        return V1Cgroup(dirs)

    def find(self, path: str) -> V1Cgroup | None:
        """The existing cgroup for a cgroupsPath, or None (for cleanup after a crash)."""
        dirs = {c: d for c, d in self._dirs(path).items() if os.path.isdir(d)}
        return V1Cgroup(dirs) if dirs else None
