"""Python faces of the C shim: each raises SyscallError(errno, op, path).

The shim returns -1 and leaves errno; the decision about what an errno means
is made here or above, never in C.
"""

import os
import sys

from minibox._shim import ffi, lib
from minibox.errors import SyscallError

# Namespace flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# Mount flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
}


def _check(rc: int, op: str, path=None) -> None:
    if rc == -1:
        raise SyscallError(ffi.errno, op, path)


def _c(s):
    return ffi.NULL if s is None else os.fsencode(s)


def unshare(flags: int) -> None:
    _check(lib.mb_unshare(flags), "unshare", hex(flags))


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    _check(lib.mb_setns(fd, nstype), "setns", path)


def mount(source, target, fstype=None, flags: int = 0, data: str | None = None) -> None:
    _check(lib.mb_mount(_c(source), _c(target), _c(fstype), flags, _c(data)), "mount", target)


def umount2(target, flags: int = 0) -> None:
    _check(lib.mb_umount2(_c(target), flags), "umount2", target)


def pivot_root(new_root, put_old) -> None:
    _check(lib.mb_pivot_root(_c(new_root), _c(put_old)), "pivot_root", new_root)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(lib.mb_sethostname(raw, len(raw)), "sethostname", name)


def setgroups(gids: list[int]) -> None:
    arr = ffi.new("unsigned int[]", gids or [0])
    _check(lib.mb_setgroups(len(gids), arr), "setgroups")


def setresgid(gid: int) -> None:
    _check(lib.mb_setresgid(gid, gid, gid), "setresgid", str(gid))


def setresuid(uid: int) -> None:
    _check(lib.mb_setresuid(uid, uid, uid), "setresuid", str(uid))


def link_up(ifname: str) -> None:
    _check(lib.mb_link_up(ifname.encode()), "ioctl SIOCSIFFLAGS", ifname)


SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C


def set_ipv4(ifname: str, address: str, prefixlen: int) -> None:
    """``address/prefixlen`` on ``ifname`` (ioctls SIOCSIFADDR, SIOCSIFNETMASK; the kernel sets brd)."""
    import _socket

    mask = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF
    for request, name, value in ((SIOCSIFADDR, "SIOCSIFADDR", _socket.inet_aton(address)),
                                 (SIOCSIFNETMASK, "SIOCSIFNETMASK", mask.to_bytes(4, "big"))):
        _check(lib.mb_if_set_inet(ifname.encode(), request, int.from_bytes(value, sys.byteorder)),
               f"ioctl {name}", ifname)


def add_default_route(gateway: str) -> None:
    """A default route via ``gateway`` (ioctl SIOCADDRT), the device found from the gateway."""
    import _socket

    _check(lib.mb_route_add_default(int.from_bytes(_socket.inet_aton(gateway), sys.byteorder)),
           "ioctl SIOCADDRT", f"default via {gateway}")


def set_controlling_tty(fd: int) -> None:
    _check(lib.mb_ioctl_tiocsctty(fd), "ioctl TIOCSCTTY")


PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    rc = lib.mb_prctl(option, arg2, arg3, arg4, arg5)
    _check(rc, "prctl", str(option))
    return rc
