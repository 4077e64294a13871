"""A build step's writable layer (an overlayfs upper dir) → an OCI layer tar.

overlayfs records a deletion as a 0:0 character device and a directory that
replaced a lower one as a directory with ``trusted.overlay.opaque=y``; the
OCI layer format spells them ``.wh.<name>`` and ``<dir>/.wh..wh..opq``. This
module walks the upper dir in sorted order (so the same changes give the same
tar) and writes those translations, hard links as links, and the xattrs the
image store accepts (``user.*``, ``security.capability``).

Paths the runtime itself created as mount points for the step (``/proc``,
``/dev`` ... when the image lacked them) are passed in ``skip`` and left out
when they are still empty; files bind-mounted read-only over the rootfs
(``/etc/resolv.conf``, ``/etc/hosts``) are passed in ``always_skip``: the step
could not change them, but making the mount point copies them up.
"""

import os
import stat
import tarfile

OPAQUE_XATTR = "trusted.overlay.opaque"
_KEPT_XATTRS = ("security.capability",)
_KEPT_PREFIXES = ("user.",)


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


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


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


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
    if not any(p.startswith(prefix) for p in always_skip) or _opaque(path):
        return False
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return all(prefix + name in always_skip for name in names)


def write_layer(upper: str, out_path: str, skip: set[str] = frozenset(),
                always_skip: set[str] = frozenset()) -> int:
    """Write the layer tar for ``upper`` to ``out_path``; return the number of entries."""
    count = 0
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT) as tf:
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
                    ti = tarfile.TarInfo(f"{rel_dir}/.wh.{name}" if rel_dir else f".wh.{name}")
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
                    if _opaque(path):
                        opq = tarfile.TarInfo(f"{rel}/.wh..wh..opq")
                        opq.mtime = int(st.st_mtime)
                        tf.addfile(opq)
                        count += 1
                    subdirs.append(rel)
            # Parents before children; push in reverse so the smallest name pops first.
            stack.extend(reversed(subdirs))
    return count


def _tarinfo(rel: str, path: str, st: os.stat_result, links: dict) -> tarfile.TarInfo | None:
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
