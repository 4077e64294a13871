"""The interfaces every cgroup implementation provides (v1.py, v2.py).

Kept out of ``minibox.cgroups`` itself because ``typing`` costs ~5 ms to
import and the runtime imports the driver on every container start; these
classes exist for readers and type checkers, not at run time.
"""

from typing import Protocol


class Cgroup(Protocol):
    """One container's cgroup (a directory per v1 controller, or one v2 directory)."""

    def add(self, pid: int) -> None:
        """Move ``pid`` (a process minibox created) into the cgroup."""

    def join_self(self) -> list[str]:
        """Move the calling process (single-threaded, just forked by minibox) in.
        Returns the files written, for --trace."""

    def apply(self, resources: dict, trace=None) -> list[str]:
        """Write OCI linux.resources; returns warnings (a swap limit the kernel cannot hold).
        ``trace(line)`` (run --trace) hears of each file written."""

    def paths(self) -> dict[str, str]:
        """{controller: dir} on v1, {"unified": dir} on v2: saved in the record, for open()."""

    def oom_killed(self) -> bool:
        """True once the kernel's OOM killer killed a task of this cgroup."""

    def stats(self) -> dict:
        """cpu_usage_ns, memory_usage, memory_limit (-1 = none), memory_inactive_file,
        pids_current, pids_limit (-1 = none), io_read_bytes, io_write_bytes."""

    def pids(self) -> list[int]:
        """Every pid in the cgroup and below it."""

    def freeze(self) -> None:
        """Freeze every task and wait until the kernel says frozen (pause)."""

    def thaw(self) -> None:
        """Undo freeze() (unpause)."""

    def kill_all(self, sig: int = 9) -> None:
        """Send ``sig`` to every task, with no fork escaping (cgroup.kill / frozen first)."""

    def destroy(self) -> None:
        """Kill what is left, wait for it to go, rmdir leaf-first; idempotent."""


class CgroupDriver(Protocol):
    """Creates and reopens cgroups on one host's hierarchy."""

    version: int
    root: str

    def create(self, path: str) -> Cgroup:
        """Make (or reuse) the cgroup at a cgroupsPath, with controllers enabled for it."""

    def open(self, paths: dict[str, str]) -> Cgroup:
        """Reopen from a saved paths(); refuses anything outside the hierarchy."""

    def find(self, path: str) -> Cgroup | None:
        """The cgroup at a cgroupsPath if it exists (cleanup of leftovers)."""

    def controllers(self) -> list[str]:
        """The controllers this host offers containers."""
