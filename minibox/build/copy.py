"""COPY and ADD into a step's rootfs, with docker's destination rules.

* a relative destination is relative to WORKDIR;
* several sources (or a wildcard) need a destination directory ending in ``/``;
* a source directory's *contents* are copied, not the directory itself;
* a file goes to ``dest/<name>`` when dest ends in ``/`` or is a directory,
  else to ``dest``;
* files from the context get owner 0:0 (or ``--chown``), keep their mode
  (or get ``--chmod``) and their mtime; files from another stage keep their
  owner unless ``--chown`` says otherwise;
* ADD extracts a local tar archive (plain, gzip, bzip2, xz, zstd) into dest,
  through the image store's safe unpacker; URLs are refused.

Every destination path is resolved with ``secure_join`` inside the rootfs,
one item at a time, so a symlink in the image (``/app -> /etc`` or
``/app -> ../../host``) can never make a copy land outside it.
"""

import errno
import os
import posixpath
import stat
from dataclasses import dataclass

from minibox.errors import MiniboxError
from minibox.runtime.paths import secure_join

_CHUNK = 1 << 20


@dataclass
class Item:
    """One thing to copy: ``rel`` is its path below the source root ("" for the root)."""

    rel: str
    host_path: str
    st: os.stat_result


def resolve_owner(spec: str | None, rootfs: str) -> tuple[int, int] | None:
    """``--chown=user[:group]`` → (uid, gid), names looked up in the rootfs' passwd/group.

    docker: a user without a group uses the same number as the gid.
    """
    if not spec:
        return None
    user, _, group = spec.partition(":")
    uid = _lookup(user, rootfs, "/etc/passwd")
    gid = _lookup(group, rootfs, "/etc/group") if group else uid
    return uid, gid


def _lookup(name: str, rootfs: str, db: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        with open(secure_join(rootfs, db), encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                    return int(fields[2])
    except OSError:
        pass
    what = "user" if db.endswith("passwd") else "group"
    raise MiniboxError(f"unable to convert {what} {name!r} to an id: no such {what} in {db}")


def parse_chmod(spec: str | None) -> int | None:
    if not spec:
        return None
    try:
        mode = int(spec, 8)
    except ValueError:
        raise MiniboxError(f"invalid --chmod {spec!r}: only octal modes are supported") from None
    if mode > 0o7777:
        raise MiniboxError(f"invalid --chmod {spec!r}")
    return mode


def destination(dest: str, workdir: str) -> str:
    """The destination as an absolute container path (trailing ``/`` kept)."""
    trailing = dest.endswith(("/", "/.")) or dest in (".", "./")
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    dest = posixpath.normpath(dest)
    if dest.startswith("//"):
        dest = dest[1:]
    return dest.rstrip("/") + "/" if trailing and dest != "/" else dest


def copy_sources(rootfs: str, sources: list[list[Item]], dest: str, *,
                 owner: tuple[int, int] | None, keep_owner: bool, chmod: int | None,
                 extract: bool = False) -> None:
    """Copy each source (its items, root first) to ``dest`` inside ``rootfs``."""
    dest_dir_hint = dest.endswith("/")
    if len(sources) > 1 and not dest_dir_hint:
        raise MiniboxError("When using COPY with more than one source file, "
                           "the destination must be a directory and end with a /")
    for items in sources:
        root = items[0]
        if stat.S_ISDIR(root.st.st_mode):
            target_dir = dest.rstrip("/") or "/"
            mkdirs(rootfs, target_dir, owner)
            for item in items[1:]:
                _copy_item(rootfs, posixpath.join(target_dir, item.rel), item, owner, keep_owner, chmod)
            continue
        if extract and stat.S_ISREG(root.st.st_mode) and _archive_kind(root.host_path):
            target_dir = dest.rstrip("/") or "/"
            mkdirs(rootfs, target_dir, owner)
            _extract(rootfs, target_dir, root.host_path)
            continue
        target = dest.rstrip("/") or "/"
        if dest_dir_hint or _is_dir(rootfs, target):
            mkdirs(rootfs, target, owner)
            target = posixpath.join(target, posixpath.basename(root.rel or root.host_path))
        else:
            mkdirs(rootfs, posixpath.dirname(target) or "/", owner)
        _copy_item(rootfs, target, root, owner, keep_owner, chmod)


def _is_dir(rootfs: str, path: str) -> bool:
    try:
        return os.path.isdir(secure_join(rootfs, path))
    except OSError:
        return False


def mkdirs(rootfs: str, path: str, owner) -> None:
    """Create ``path`` and missing parents (0755, root or --chown owner) inside ``rootfs``.

    Each prefix is resolved with secure_join, so an image symlink on the way
    (even one pointing at a host path) is followed inside the rootfs only.
    """
    from minibox.runtime.paths import make_path

    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = posixpath.join(current, part)
        try:
            host = secure_join(rootfs, current)
            existed = os.path.lexists(host)
            host = make_path(rootfs, current)
        except OSError as e:
            raise MiniboxError(f"cannot copy to {path}: {current}: {e.strerror}") from None
        if not os.path.isdir(host):
            raise MiniboxError(f"cannot copy to {path}: {current} is not a directory")
        if not existed:
            os.chmod(host, 0o755)
            if owner:
                os.lchown(host, *owner)


def _replace_target(host: str, want_dir: bool, shown: str) -> bool:
    """Clear the way for a new entry at ``host``; True when a directory is already there."""
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if want_dir:
            return True
        raise MiniboxError(f"cannot overwrite directory {shown} with a non-directory")
    os.unlink(host)
    return False


def _copy_item(rootfs: str, target: str, item: Item, owner, keep_owner: bool, chmod) -> None:
    parent = secure_join(rootfs, posixpath.dirname(target) or "/")
    host = os.path.join(parent, posixpath.basename(target))
    st = item.st
    mode = stat.S_IMODE(st.st_mode) if chmod is None else chmod
    uid, gid = owner if owner else ((st.st_uid, st.st_gid) if keep_owner else (0, 0))
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFDIR:
        if not _replace_target(host, True, target):
            os.mkdir(host, 0o700)
        os.lchown(host, uid, gid)
        os.chmod(host, mode)
        os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns))
        return
    _replace_target(host, False, target)
    if kind == stat.S_IFLNK:
        os.symlink(os.readlink(item.host_path), host)
        os.lchown(host, uid, gid)
        os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return
    if kind != stat.S_IFREG:
        return  # FIFOs, sockets and devices are not copied (docker skips sockets too)
    src = os.open(item.host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dst = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _copy_fd(src, dst)
            os.fchown(dst, uid, gid)
            os.fchmod(dst, mode)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_fd(src: int, dst: int) -> None:
    try:
        while os.copy_file_range(src, dst, _CHUNK):
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while True:
        chunk = os.read(src, _CHUNK)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]


_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def _archive_kind(path: str) -> str | None:
    """The archive type ADD extracts, or None for a plain file copied as is."""
    with open(path, "rb") as f:
        head = f.read(512)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def _extract(rootfs: str, target_dir: str, archive: str) -> None:
    from minibox.image import unpack

    kind = _archive_kind(archive)
    label = f"ADD {os.path.basename(archive)}"
    with open(archive, "rb") as raw, _decompressor(kind, raw) as stream:
        try:
            unpack.unpack(stream, secure_join(rootfs, target_dir), label=label)
        except MiniboxError as e:
            raise MiniboxError(f"{label}: {e}") from None


def _decompressor(kind: str | None, raw):
    """bzip2 and xz readers; the unpacker itself reads gzip, zstd and plain tar."""
    if kind == "bzip2":
        import bz2

        return bz2.BZ2File(raw)
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(raw)
    import contextlib

    return contextlib.nullcontext(raw)
