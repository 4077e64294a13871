"""Resolve a path inside a container's rootfs without ever leaving it.

Image content is hostile: ``/etc`` may be a symlink to ``/../../host/etc``.
``secure_join`` walks the path one component at a time, reading symlinks
itself and interpreting them relative to the rootfs (an absolute link target
restarts at the rootfs, ``..`` stops at it), as runc's filepath-securejoin
does. The result is a host path that is inside ``root`` at the time of the
call; it is used before any container process runs, so nothing inside can
race it.
"""

import errno
import os

from minibox.errors import SyscallError

_MAX_SYMLINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    """Return ``root`` + ``unsafe`` with every symlink resolved inside ``root``.

    Components that do not exist yet are kept as they are, so the result can
    be created afterwards with :func:`make_path`.
    """
    root = os.path.abspath(root)
    pending = [c for c in unsafe.split("/") if c]
    pending.reverse()
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if not _is_link(st):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise SyscallError(errno.ELOOP, "secure_join", os.path.join(root, unsafe.lstrip("/")))
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        rest = [c for c in target.split("/") if c]
        rest.reverse()
        pending.extend(rest)
    return os.path.join(root, *resolved)


def _is_link(st: os.stat_result) -> bool:
    return (st.st_mode & 0o170000) == 0o120000


def make_path(root: str, unsafe: str, *, is_file: bool = False, mode: int = 0o755) -> str:
    """Create ``unsafe`` (a dir, or an empty file) inside ``root``; return its host path.

    Every parent is resolved with :func:`secure_join` before it is created,
    so a symlink planted in the image cannot redirect the creation outside.
    """
    target = secure_join(root, unsafe)
    parent = os.path.dirname(target) if is_file else target
    rel = os.path.relpath(parent, root)
    current = root
    if rel != ".":
        for part in rel.split("/"):
            current = secure_join(root, os.path.relpath(os.path.join(current, part), root))
            try:
                os.mkdir(current, mode)
            except FileExistsError:
                if not os.path.isdir(current):
                    raise SyscallError(errno.ENOTDIR, "mkdir", current) from None
    if is_file:
        target = secure_join(root, unsafe)
        try:
            # Read-only open: creating a mount point must not copy an existing
            # file up into the container's writable layer.
            fd = os.open(target, os.O_CREAT | os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except IsADirectoryError:
            return target
        except OSError as exc:
            raise SyscallError(exc.errno, "open", target) from None
        os.close(fd)
    return target
