"""Small filesystem helpers: atomic writes, 0700 dirs, a lock, a safe ``rm -rf``.

Every file the store writes goes through ``atomic_write`` (tmp + fsync +
``os.replace`` + fsync of the directory), so a reader or a crash sees the old
content or the new one, never half of it.
"""

import os


def makedirs(path: str, mode: int = 0o700) -> None:
    """``mkdir -p`` giving ``mode`` to every directory it creates (os.makedirs
    applies it to the last one only, the parents get the umask's)."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        makedirs(parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    os.chmod(path, mode)  # mkdir's mode is masked by the umask


def remove_tree(path: str, ignore_errors: bool = False) -> None:
    """``rm -rf path`` that never follows a symlink; a missing ``path`` is fine.

    Container trees hold untrusted content (an upper dir may hold a symlink
    to /), so every entry is removed relative to the fd of its directory
    (os.fwalk opens each one and descends only if it is the directory it
    listed), as shutil.rmtree's safe mode does. Not shutil itself: it costs
    about 4 ms to import (its archive support loads zlib, bz2 and lzma) on
    every ``run --rm``. Errors do not stop the removal; the first is raised
    at the end unless ``ignore_errors``.
    """
    errors: list[OSError] = []

    def unlink(name, dirfd, rmdir=False):
        try:
            if rmdir:
                try:
                    os.rmdir(name, dir_fd=dirfd)
                    return
                except NotADirectoryError:
                    pass  # a symlink to a directory: listed with the dirs, removed as a link
            os.unlink(name, dir_fd=dirfd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            errors.append(exc)

    try:
        for _dirpath, dirnames, filenames, dirfd in os.fwalk(path, topdown=False, onerror=errors.append):
            for name in filenames:
                unlink(name, dirfd)
            for name in dirnames:
                unlink(name, dirfd, rmdir=True)
    except FileNotFoundError:
        return  # fwalk stats the top itself: nothing there
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        os.unlink(path)
    except OSError as exc:
        errors.append(exc)
    errors = [e for e in errors if not isinstance(e, FileNotFoundError)]
    if errors and not ignore_errors:
        raise errors[0]


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably (minibox.atomic)."""
    from minibox.atomic import write_bytes

    write_bytes(path, data, mode)


def atomic_write_json(path: str, obj, mode: int = 0o600) -> None:
    import json

    atomic_write(path, json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n", mode)


def read_json(path: str, default=None):
    import json

    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return default


class FileLock:
    """An exclusive ``flock`` on a file, for writers of the store (a context manager)."""

    def __init__(self, path: str, shared: bool = False, blocking: bool = True):
        self.path = path
        self.fd = -1
        self.shared = shared
        self.blocking = blocking
        self.acquired = False

    def __enter__(self):
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        op = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        try:
            fcntl.flock(self.fd, op | (0 if self.blocking else fcntl.LOCK_NB))
            self.acquired = True
        except BlockingIOError:
            self.acquired = False
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the flock
        self.fd = -1


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
