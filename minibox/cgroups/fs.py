"""The few file operations on cgroupfs, each failing with the operation and the path.

cgroupfs files are kernel interfaces, not data: a value is written with one
write(2) to an existing file (never O_CREAT, never tmp+rename), so a missing
file means a missing controller, not something to create. ``mkdir`` is a
module function so unit tests can swap in one that also creates the control
files, as the kernel does, in a fake tree under tmp_path.
"""

import errno
import os
import time

from minibox.errors import SyscallError


def write(path: str, value: str) -> None:
    """One write(2) of ``value``; the error names the value and the file.

    O_TRUNC is a no-op on cgroupfs (as in runc) and makes a fake tree behave.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as exc:
        raise SyscallError(exc.errno, "open", path) from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise SyscallError(exc.errno, f"write {value!r} to", path) from None
    finally:
        os.close(fd)


def read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        raise SyscallError(exc.errno, "read", path) from None


def read_int(path: str, default: int | None = None) -> int | None:
    """An integer file (``max`` → -1); ``default`` when the file is absent."""
    try:
        text = read(path).strip()
    except SyscallError as exc:
        if exc.errno == errno.ENOENT and default is not None:
            return default
        raise
    return -1 if text == "max" else int(text.split()[0])


def read_keyed(path: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, memory.events, cpu.stat) → dict; {} if absent."""
    try:
        text = read(path)
    except SyscallError as exc:
        if exc.errno == errno.ENOENT:
            return {}
        raise
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def read_pids(path: str) -> list[int]:
    """The pids listed in a ``cgroup.procs`` file; [] when the cgroup is gone."""
    try:
        return [int(x) for x in read(path).split()]
    except SyscallError as exc:
        if exc.errno == errno.ENOENT:
            return []
        raise


def mkdir(path: str) -> bool:
    """Create one cgroup directory; False if it already existed."""
    try:
        os.mkdir(path, 0o755)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise SyscallError(exc.errno, "mkdir", path) from None


SHARED_PARENT = "minibox"  # the default parent every container's cgroup is made under


def remove_shared_parent(child: str) -> None:
    """rmdir the default ``minibox`` parent of ``child`` once no container uses it.

    Another container's cgroup keeps it busy (EBUSY/ENOTEMPTY), which is
    fine; a create racing with this removal retries (see retry_vanished).
    """
    parent = os.path.dirname(child)
    if os.path.basename(parent) != SHARED_PARENT:
        return
    try:
        os.rmdir(parent)
    except OSError:
        pass


def retry_vanished(create, attempts: int = 3):
    """Run ``create()``, again if a parent dir vanished under it (removed as empty meanwhile)."""
    for attempt in range(attempts):
        try:
            return create()
        except SyscallError as exc:
            if exc.errno != errno.ENOENT or attempt == attempts - 1:
                raise


def rmdir_tree(path: str) -> None:
    """Remove a cgroup and its descendants, leaves first; a missing one is fine.

    rmdir of a cgroup whose last task just died can fail with EBUSY for a
    moment while the kernel finishes the exit, so EBUSY is retried briefly.
    """
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SyscallError(exc.errno, "scandir", path) from None
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            rmdir_tree(entry.path)
    deadline = time.monotonic() + 2.0
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise SyscallError(exc.errno, "rmdir", path) from None
            time.sleep(0.01)


def descendants(path: str) -> list[str]:
    """``path`` and every cgroup below it, parents first."""
    out = [path]
    try:
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                out += descendants(entry.path)
    except FileNotFoundError:
        return []
    return out


def wait_until(predicate, timeout: float, step: float = 0.005) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (cgroupfs has no event we can block on portably)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
        step = min(step * 2, 0.05)


def read_io(path: str, v2: bool) -> tuple[int, int]:
    """(bytes read, bytes written) summed over devices; (0, 0) when the file is absent.

    v2 io.stat: ``8:0 rbytes=N wbytes=N rios=...``; v1
    blkio.throttle.io_service_bytes_recursive: ``8:0 Read N`` / ``8:0 Write N``.
    """
    try:
        text = read(path)
    except SyscallError as exc:
        if exc.errno == errno.ENOENT:
            return 0, 0
        raise
    rd = wr = 0
    for line in text.splitlines():
        parts = line.split()
        if v2:
            for kv in parts[1:]:
                key, _, value = kv.partition("=")
                if key == "rbytes":
                    rd += int(value)
                elif key == "wbytes":
                    wr += int(value)
        elif len(parts) == 3 and parts[2].isdigit():
            if parts[1] == "Read":
                rd += int(parts[2])
            elif parts[1] == "Write":
                wr += int(parts[2])
    return rd, wr
