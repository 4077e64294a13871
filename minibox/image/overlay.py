"""The container rootfs: an overlay of the image's layer dirs under a writable upper.

``mount(2)`` takes its options in one page (4096 bytes here), and a lowerdir of
100 absolute layer paths does not fit. As docker's overlay2 does, the lower
dirs are given as short relative links (``l/ABCDEFGHIJ``, 12 bytes each) and
the mount call runs with the store dir as cwd; the kernel resolves them at
mount time, so the cwd does not matter afterwards.
"""

import errno
import os

from minibox.errors import MiniboxError, SyscallError


def _page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4096


def overlay_options(lowers: list[str], upper: str, work: str) -> str:
    """The overlay option string; lowers are top layer first."""
    opts = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    # index=off, as docker sets it: the same lower layers are mounted by many
    # containers at once, and an index would tie a lower to one overlay.
    if os.path.exists("/sys/module/overlay/parameters/index"):
        opts += ",index=off"
    return opts


def mount_overlay(store, img, upper: str, work: str, merged: str, trace=None) -> None:
    """Mount ``img``'s layers (read-only) + ``upper`` (writable) on ``merged``.

    ``upper``, ``work`` and ``merged`` must exist; they are made absolute
    because the mount runs with the store dir as its cwd. ``trace``
    (``run --trace``) gets the mount call with its options, and where each
    short lowerdir link leads.
    """
    from minibox import syscalls

    upper, work, merged = (os.path.abspath(p) for p in (upper, work, merged))
    lowers = store.lower_links(img)
    if not lowers:
        raise MiniboxError(f"image {img.short_id} has no layers")
    opts = overlay_options(lowers, upper, work)
    if len(opts) >= _page_size():
        raise MiniboxError(
            f"image {img.short_id}: {len(lowers)} layers give overlay options of {len(opts)} bytes, "
            f"over the page size"
        )
    # chdir is process-wide: restore it even if the mount fails. Callers mount
    # before they start threads that depend on the cwd.
    if trace:
        trace(f"mount overlay overlay -> {merged} ({opts}) [cwd {store.dir}]")
        for link in lowers:
            trace(f"  lowerdir {link} = {os.path.realpath(os.path.join(store.dir, link))} (read-only)")
    saved = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(store.dir)
        syscalls.mount("overlay", merged, "overlay", 0, opts)
    finally:
        os.fchdir(saved)
        os.close(saved)


def unmount_overlay(merged: str) -> None:
    """Unmount ``merged``; nothing to do if it is not mounted or gone (idempotent)."""
    from minibox import syscalls

    try:
        syscalls.umount2(merged, 0)
    except SyscallError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT):
            return
        if exc.errno == errno.EBUSY:
            # Still in use (a process holds a cwd there): detach it lazily.
            syscalls.umount2(merged, syscalls.MNT_DETACH)
            return
        raise
