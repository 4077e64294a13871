"""Keep the container's view from reaching back into the host (known escape classes).

Three checks the runtime makes on its way into a container:

- ``/proc``, ``/sys`` and ``/dev`` of an image must be real directories:
  a symlink there (``/proc -> ../../etc``) would make the kernel filesystems
  land somewhere the image chose, and masked/read-only paths miss their
  target. Bind mounts are resolved inside the rootfs by secure_join; the
  kernel filesystems are refused instead (runc refuses /proc symlinks too).
- The working directory is entered with chdir and then checked to be
  reachable from the container's root: ``-w /proc/self/fd/N`` naming a
  host directory the runtime held open (runc's CVE-2024-21626) makes
  getcwd(2) answer "(unreachable)/...", which glibc turns into ENOENT.
- Until execve the init and exec helpers are the host's Python; marking them
  non-dumpable means a container process cannot open their
  ``/proc/<pid>/exe``, ``mem`` or fds (runc's CVE-2019-5736 defence).
  execve restores the flag for the container's own program.
"""

import errno
import os
import stat

from minibox.errors import EXIT_RUNTIME, SyscallError

# Mount points the runtime fills with kernel filesystems (and /dev with nodes).
KERNEL_DIRS = ("/proc", "/sys", "/dev")
_PR_SET_DUMPABLE = 4


def _refuse(message: str):
    # InitFailed carries the exit code back over the init's error pipe; the
    # runtime process module is loaded whenever these checks run.
    from minibox.runtime.process import InitFailed

    return InitFailed(message, EXIT_RUNTIME)


def check_kernel_dirs(rootfs: str, mounts: list[dict] | None = None) -> None:
    """Refuse a rootfs whose /proc, /sys or /dev, or a component of a kernel
    filesystem's mount point below them (/dev/pts, /sys/fs/cgroup ...), is a
    symlink or a non-directory; every component is checked with lstat.
    """
    targets = set(KERNEL_DIRS)
    for m in mounts or ():
        opts = m.get("options") or ()
        dest = m.get("destination") or ""
        kernel_fs = m.get("type") not in (None, "bind", "none") and "bind" not in opts and "rbind" not in opts
        # Only below /proc, /sys, /dev: elsewhere (--tmpfs /var/run, with /var/run -> /run in
        # Debian images) secure_join resolves the link inside the rootfs, as runc does.
        if kernel_fs and any(dest == d or dest.startswith(d + "/") for d in KERNEL_DIRS):
            targets.add(dest)
    for dest in sorted(targets):
        parts = [p for p in dest.split("/") if p]
        current = rootfs
        for part in parts:
            current = os.path.join(current, part)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                break  # created later as a real directory by make_path
            except OSError as exc:
                raise SyscallError(exc.errno, "lstat", current) from None
            if stat.S_ISLNK(st.st_mode):
                raise _refuse(
                    f"refusing to mount on {dest}: /{os.path.relpath(current, rootfs)} is a symlink "
                    f"in the image (to {os.readlink(current)!r}); kernel filesystems are never "
                    "mounted through symlinks")
            if not stat.S_ISDIR(st.st_mode):
                raise _refuse(f"refusing to mount on {dest}: /{os.path.relpath(current, rootfs)} "
                              "is not a directory in the image")


def enter_cwd(cwd: str) -> None:
    """chdir into the (already pivoted) container's ``cwd`` and prove it is inside the root."""
    if not cwd.startswith("/"):
        raise _refuse(f"the working directory {cwd!r} is invalid, it needs to be an absolute path")
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise SyscallError(exc.errno, "chdir", cwd) from None
    try:
        here = os.getcwd()
    except OSError:
        here = None
    if here is None or not here.startswith("/") or _ident(here) != _ident("."):
        os.chdir("/")
        raise _refuse(f"cannot use {cwd} as working directory: it is outside the container "
                      "(a path through /proc/*/fd or a link out of the root)")


def enter_root(root_fd: int) -> None:
    """chroot to the container init's root (an fd of /proc/<init>/root) after setns(mnt).

    setns into a mount namespace puts the caller at the namespace's root
    mount, which is the container's root only if the init's pivot_root made
    it so; when the runtime itself runs chrooted (a build sandbox, the VM
    harness) it is the host's tree. Entering the init's own root directory
    makes ``exec`` land exactly where the init is, as ``nsenter -r`` does.
    """
    try:
        os.fchdir(root_fd)
        os.chroot(".")
    except OSError as exc:
        raise SyscallError(exc.errno, "chroot", "/proc/<init>/root") from None


def _ident(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def make_non_dumpable() -> None:
    """PR_SET_DUMPABLE 0: /proc/<pid>/{exe,mem,fd} of this process are closed to its peers."""
    from minibox import syscalls as sc

    try:
        sc.prctl(_PR_SET_DUMPABLE, 0)
    except OSError as exc:
        raise SyscallError(getattr(exc, "errno", errno.EINVAL), "prctl PR_SET_DUMPABLE", None) from None
