"""A container's writable layer (overlay upper dir) as changes and as a new image layer.

``changes()`` is what ``docker diff`` prints: A(dded), C(hanged), D(eleted),
read from the upper dir alone (plus lookups in the image's layers to tell A
from C). ``layer_tar()`` turns the upper dir back into an OCI layer: overlay
whiteouts (char 0/0) become ``.wh.NAME`` entries and opaque dirs get a
``.wh..wh..opq`` entry, which is what ``commit`` stores on top of the image.
Nothing here follows a symlink: the upper dir is written by the container.
"""

import os
import stat

from minibox.image.unpack import OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def walk_sorted(top: str):
    """(relative path, absolute path, lstat) of every entry below ``top`` in path
    order (a dir before its children); symlinks are listed, never followed."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out.append((os.path.relpath(path, top), path, os.lstat(path)))
    out.sort(key=lambda e: e[0].split("/"))
    return out


def _in_lowers(rel: str, lowers: list[str]) -> bool:
    """Whether ``rel`` is visible in the image's layers (lowers: top layer first)."""
    parts = rel.split("/")
    for lower in lowers:
        # A whiteout or an opaque dir on the way down hides everything below it.
        cur = lower
        hidden = False
        for i, part in enumerate(parts):
            cur = os.path.join(cur, part)
            try:
                st = os.lstat(cur)
            except FileNotFoundError:
                break
            if is_whiteout(st):
                return False
            if i == len(parts) - 1:
                return True
            if not stat.S_ISDIR(st.st_mode):
                break
            if is_opaque(cur):
                hidden = True
        else:
            return True
        if hidden:
            return False
    return False


def changes(upper: str, lowers: list[str]) -> list[tuple[str, str]]:
    """``[("C", "/etc"), ("A", "/etc/new"), ("D", "/old")]`` sorted by path, as docker diff."""
    out = []
    for rel, _path, st in walk_sorted(upper):
        if is_whiteout(st):
            out.append(("D", "/" + rel))
        else:
            out.append(("C" if _in_lowers(rel, lowers) else "A", "/" + rel))
    return out


def layer_tar(upper: str, fileobj) -> None:
    """Write the upper dir as an OCI layer tar (whiteouts converted) to ``fileobj``."""
    import tarfile

    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for rel, path, st in walk_sorted(upper):
            parent, _, name = rel.rpartition("/")
            if is_whiteout(st):
                ti = tarfile.TarInfo(f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name)
                ti.mtime = int(st.st_mtime)
                tf.addfile(ti)
                continue
            ti = tf.gettarinfo(path, arcname=rel)
            if ti is None:  # sockets cannot be archived
                continue
            if ti.isreg():
                with open(path, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)
            if ti.isdir() and is_opaque(path):
                opq = tarfile.TarInfo(f"{rel}/{WHITEOUT_OPAQUE}")
                opq.mtime = int(st.st_mtime)
                tf.addfile(opq)
