"""cgroup v2: one unified tree; controllers are switched on per level.

A controller's files appear in a cgroup only when its parent lists it in
``cgroup.subtree_control``, so create() enables what the container needs
on every level from the hierarchy root down to the container's parent.
The kernel then enforces the "no internal processes" rule: a non-root
cgroup that has processes of its own cannot hand controllers to children
(EBUSY). That is the usual failure when minibox runs inside a login
session's scope, and the error says so and how to avoid it.
"""

import errno
import os
import signal

from minibox.cgroups import fs, resolve
from minibox.cgroups.convert import v2_writes
from minibox.errors import MiniboxError, SyscallError

# What containers are limited by; others (rdma, hugetlb, misc) are left alone.
WANTED = ("cpuset", "cpu", "io", "memory", "pids")


class V2Cgroup:
    """A container's cgroup in the unified tree."""

    def __init__(self, path: str):
        self.path = path

    def _f(self, name: str) -> str:
        return os.path.join(self.path, name)

    def paths(self) -> dict[str, str]:
        return {"unified": self.path}

    def add(self, pid: int) -> None:
        fs.write(self._f("cgroup.procs"), str(pid))

    def join_self(self) -> list[str]:
        """Move the calling process in ("0" to ``cgroup.procs``); returns the file written.

        v2 has no per-thread shortcut for a domain cgroup (``cgroup.threads``
        is for threaded ones), so this takes the kernel's global lock.
        """
        path = self._f("cgroup.procs")
        fs.write(path, "0")
        return [path]

    def apply(self, resources: dict, trace=None) -> list[str]:
        """Write the OCI resources; returns warnings for limits the host cannot hold.

        ``trace`` (``run --trace``) is called with each file written and its value.
        """
        warnings = []
        for name, value in v2_writes(resources):
            target = self._f(name)
            if not os.path.exists(target):
                if name == "memory.swap.max":
                    warnings.append("swap limit ignored: the kernel has no swap accounting (memory.swap.max)")
                    continue
                ctrl = name.split(".", 1)[0]
                raise MiniboxError(
                    f"cannot set {name}: the {ctrl} controller is not enabled for {self.path} "
                    f"(missing from {os.path.dirname(self.path)}/cgroup.subtree_control)"
                )
            if trace:
                trace(f"cgroup write {target} = {value}")
            fs.write(target, value)
        self._apply_devices(resources.get("devices") or [])
        return warnings

    def _apply_devices(self, rules: list[dict]) -> None:
        """v2 has no devices.allow: attach an eBPF device filter (none when all is allowed)."""
        from minibox.cgroups.devices import is_allow_all

        if not rules or is_allow_all(rules):
            return
        from minibox.cgroups import ebpf

        ebpf.attach(self.path, rules)

    def oom_killed(self) -> bool:
        """True once the kernel's OOM killer killed a task here (memory.events oom_kill)."""
        return fs.read_keyed(self._f("memory.events")).get("oom_kill", 0) > 0

    def stats(self) -> dict:
        """Raw counters docker's ``stats`` is computed from."""
        cpu = fs.read_keyed(self._f("cpu.stat"))
        mem = fs.read_keyed(self._f("memory.stat"))
        io_read, io_write = fs.read_io(self._f("io.stat"), v2=True)
        return {
            "io_read_bytes": io_read,
            "io_write_bytes": io_write,
            "cpu_usage_ns": cpu.get("usage_usec", 0) * 1000,
            "memory_usage": fs.read_int(self._f("memory.current"), 0),
            "memory_limit": fs.read_int(self._f("memory.max"), -1),
            "memory_inactive_file": mem.get("inactive_file", 0),
            "pids_current": fs.read_int(self._f("pids.current"), 0),
            "pids_limit": fs.read_int(self._f("pids.max"), -1),
        }

    def pids(self) -> list[int]:
        out = []
        for d in fs.descendants(self.path):
            out += fs.read_pids(os.path.join(d, "cgroup.procs"))
        return out

    def freeze(self) -> None:
        fs.write(self._f("cgroup.freeze"), "1")
        if not fs.wait_until(lambda: fs.read_keyed(self._f("cgroup.events")).get("frozen") == 1, 5.0):
            raise MiniboxError(f"cgroup {self.path} did not freeze within 5s")

    def thaw(self) -> None:
        fs.write(self._f("cgroup.freeze"), "0")

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Signal every task; SIGKILL uses cgroup.kill (5.14+), which races no fork."""
        if sig == signal.SIGKILL and os.path.exists(self._f("cgroup.kill")):
            try:
                fs.write(self._f("cgroup.kill"), "1")
            except SyscallError as exc:
                if exc.errno != errno.ENOENT:
                    raise
            return
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def destroy(self) -> None:
        """Kill what is left, wait for it to go, remove the cgroup (idempotent)."""
        if not os.path.isdir(self.path):
            return
        if self.pids():
            self.kill_all(signal.SIGKILL)
            if not fs.wait_until(lambda: not self.pids(), 5.0):
                raise MiniboxError(f"cgroup {self.path} still has processes after SIGKILL: {self.pids()}")
        fs.rmdir_tree(self.path)
        fs.remove_shared_parent(self.path)


class V2Driver:
    """Creates containers' cgroups in the unified hierarchy mounted at ``root``."""

    version = 2

    def __init__(self, root: str, own: str):
        self.root = root
        self.own = own

    def controllers(self) -> list[str]:
        return fs.read(os.path.join(self.root, "cgroup.controllers")).split()

    def _dir(self, path: str) -> str:
        return os.path.join(self.root, resolve(path, self.own).lstrip("/"))

    def create(self, path: str) -> V2Cgroup:
        """mkdir every missing level, enabling the wanted controllers on the way down."""
        target = self._dir(path)
        rel = os.path.relpath(target, self.root).split(os.sep)

        def make():
            current = self.root
            for part in rel:
                self._enable(current)
                current = os.path.join(current, part)
                fs.mkdir(current)

        fs.retry_vanished(make)
        return V2Cgroup(target)

    def _enable(self, parent: str) -> None:
        available = fs.read(os.path.join(parent, "cgroup.controllers")).split()
        enabled = fs.read(os.path.join(parent, "cgroup.subtree_control")).split()
        missing = [c for c in WANTED if c in available and c not in enabled]
        if not missing:
            return
        ctl = os.path.join(parent, "cgroup.subtree_control")
        # One controller per write: a controller the kernel will not hand down
        # here (cpu while a realtime task sits in a child, say) must not stop
        # the others; apply() names it if a limit needs it.
        for ctrl in missing:
            try:
                fs.write(ctl, "+" + ctrl)
            except SyscallError as exc:
                if exc.errno == errno.EBUSY:
                    raise MiniboxError(
                        f"cannot enable {ctrl} in {ctl}: {parent} has processes of its own, and "
                        "cgroup v2 lets only a cgroup without processes hand controllers to children "
                        "(the no-internal-process rule); run minibox from a cgroup whose parent is free of "
                        "processes, or pass an absolute --cgroup-parent such as /minibox"
                    ) from None
                if exc.errno not in (errno.EINVAL, errno.ENOENT, errno.EOPNOTSUPP):
                    raise

    def open(self, paths: dict[str, str]) -> V2Cgroup:
        """Reopen a cgroup from paths() saved in a record; refuses paths outside the root."""
        path = os.path.normpath(paths.get("unified", ""))
        if not path.startswith(self.root.rstrip("/") + "/"):
            raise MiniboxError(f"cgroup path {path!r} is not below {self.root}")
        return V2Cgroup(path)

    def find(self, path: str) -> V2Cgroup | None:
        """The existing cgroup for a cgroupsPath, or None (for cleanup after a crash)."""
        target = self._dir(path)
        return V2Cgroup(target) if os.path.isdir(target) else None
