"""A container's writable layer (overlay upper dir) as changes and as a new image layer.

``changes()`` is what ``docker diff`` prints: A(dded), C(hanged), D(eleted),
read from the upper dir alone (plus lookups in the image's layers to tell A
from C). ``layer_tar()`` turns the upper dir back into an OCI layer: overlay
whiteouts (char 0/0) become ``.wh.NAME`` entries and opaque dirs get a
``.wh..wh..opq`` entry; ``commit`` and every ``build`` step store it on top
of the image.
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


# ---------------------------------------------------------------- layer tars
# Used by ``commit`` and by ``build`` (one layer per filesystem-changing step).

_KEPT_XATTRS = ("security.capability",)
_KEPT_PREFIXES = ("user.",)


def _xattrs(path: str) -> dict[str, str]:
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        if name in _KEPT_XATTRS or name.startswith(_KEPT_PREFIXES):
            try:
                value = os.getxattr(path, name, follow_symlinks=False)
            except OSError:
                continue
            # PAX headers carry text; tarfile encodes them with surrogateescape.
            out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


def _empty_placeholder(path: str, st: os.stat_result) -> bool:
    if stat.S_ISDIR(st.st_mode):
        try:
            return not os.listdir(path)
        except OSError:
            return False
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def _only_skipped(rel: str, path: str, always_skip: set[str]) -> bool:
    """A non-opaque dir whose only entries are always-skipped files."""
    prefix = rel + "/"
    if not any(p.startswith(prefix) for p in always_skip) or is_opaque(path):
        return False
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return all(prefix + name in always_skip for name in names)


def write_layer(upper: str, out_path: str, skip: set[str] = frozenset(),
                always_skip: set[str] = frozenset()) -> int:
    """Write the layer tar for ``upper`` to ``out_path``; return the number of entries."""
    with open(out_path, "wb") as f:
        return layer_tar(upper, f, skip, always_skip)


def layer_tar(upper: str, fileobj, skip: set[str] = frozenset(), always_skip: set[str] = frozenset()) -> int:
    """Write ``upper`` as an OCI layer tar to ``fileobj``; return the number of entries.

    Sorted walk (the same changes give the same tar), whiteouts and opaque
    dirs translated, hard links kept as links, safe xattrs kept. ``skip``:
    mount points the runtime created, left out while still empty;
    ``always_skip``: files bind-mounted over the rootfs (a build step's
    /etc/hosts), never part of the layer.
    """
    import tarfile

    count = 0
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tf:
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            full_dir = os.path.join(upper, rel_dir) if rel_dir else upper
            subdirs = []
            for name in sorted(os.listdir(full_dir)):
                rel = f"{rel_dir}/{name}" if rel_dir else name
                path = os.path.join(full_dir, name)
                st = os.lstat(path)
                if rel in always_skip or (rel in skip and _empty_placeholder(path, st)):
                    continue
                if stat.S_ISDIR(st.st_mode) and _only_skipped(rel, path, always_skip):
                    # Copied up only because a bind-mount target inside it was.
                    continue
                if is_whiteout(st):
                    ti = tarfile.TarInfo(f"{rel_dir}/{WHITEOUT_PREFIX}{name}" if rel_dir else WHITEOUT_PREFIX + name)
                    ti.mtime = int(st.st_mtime)
                    tf.addfile(ti)
                    count += 1
                    continue
                ti = _tarinfo(rel, path, st, links)
                if ti is None:
                    continue
                if ti.isreg():
                    with open(path, "rb") as f:
                        tf.addfile(ti, f)
                else:
                    tf.addfile(ti)
                count += 1
                if stat.S_ISDIR(st.st_mode):
                    if is_opaque(path):
                        opq = tarfile.TarInfo(f"{rel}/{WHITEOUT_OPAQUE}")
                        opq.mtime = int(st.st_mtime)
                        tf.addfile(opq)
                        count += 1
                    subdirs.append(rel)
            # Parents before children; push in reverse so the smallest name pops first.
            stack.extend(reversed(subdirs))
    return count


def _tarinfo(rel: str, path: str, st: os.stat_result, links: dict):
    import tarfile

    ti = tarfile.TarInfo(rel)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = int(st.st_mtime)
    mode = st.st_mode
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            ti.type, ti.linkname = tarfile.LNKTYPE, links[key]
        else:
            if st.st_nlink > 1:
                links[key] = rel
            ti.type, ti.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(mode):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif stat.S_ISFIFO(mode):
        ti.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return None  # sockets do not go into layers
    xattrs = _xattrs(path)
    if xattrs:
        ti.pax_headers = xattrs
    return ti
