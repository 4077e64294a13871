"""The container's filesystem: a plan of mount steps built from config.json, then applied.

Planning is pure (no syscalls) so it is unit-tested without root; ``apply``
runs in the container's init, in its own mount namespace, before pivot_root.
Steps follow runc's order: make propagation private, bind the rootfs onto
itself (pivot_root needs a mount point), mount the spec's mounts inside it,
create the device nodes, pivot_root, then mask and lock paths from inside.
"""

import os
import stat

from minibox import syscalls as sc
from minibox.errors import SyscallError
from minibox.runtime.paths import make_path, secure_join

# OCI mount option -> (flags to set, flags to clear); anything else is fs data.
_FLAG_OPTIONS = {
    "ro": (sc.MS_RDONLY, 0), "rw": (0, sc.MS_RDONLY),
    "nosuid": (sc.MS_NOSUID, 0), "suid": (0, sc.MS_NOSUID),
    "nodev": (sc.MS_NODEV, 0), "dev": (0, sc.MS_NODEV),
    "noexec": (sc.MS_NOEXEC, 0), "exec": (0, sc.MS_NOEXEC),
    "bind": (sc.MS_BIND, 0), "rbind": (sc.MS_BIND | sc.MS_REC, 0),
    "relatime": (sc.MS_RELATIME, 0), "strictatime": (sc.MS_STRICTATIME, 0),
}
_PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
}

# docker's default device nodes: (path, type, major, minor, mode).
DEFAULT_DEVICES = (
    ("/dev/null", "c", 1, 3, 0o666),
    ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666),
    ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666),
    ("/dev/tty", "c", 5, 0, 0o666),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
    ("/proc/kcore", "/dev/core"),
)


class MountOp:
    """One mount(2) call: ``dest`` is a path inside the container.

    Plain classes here, not dataclasses: ``import dataclasses`` costs ~20 ms
    and this module is on every container's start path.
    """

    __slots__ = ("source", "dest", "fstype", "flags", "data", "propagation", "is_file")

    def __init__(self, source: str | None, dest: str, fstype: str | None, flags: int, data: str | None,
                 propagation: int = 0, is_file: bool = False):
        self.source, self.dest, self.fstype, self.flags = source, dest, fstype, flags
        self.data, self.propagation, self.is_file = data, propagation, is_file

    def describe(self) -> str:
        """One ``--trace`` line: type, source, target and every option (flags and data)."""
        opts = [name for name, (set_, _) in _FLAG_OPTIONS.items()
                if set_ and self.flags & set_ == set_ and name != "bind"]
        if "rbind" in opts:
            opts.remove("rbind")
            opts.insert(0, "rbind")
        elif self.flags & sc.MS_BIND:
            opts.insert(0, "bind")
        opts += [name for name, bits in _PROPAGATION.items() if self.propagation == bits]
        if self.data:
            opts.append(self.data)
        kind = self.fstype or "bind"
        return f"mount {kind} {self.source or kind} -> {self.dest} ({','.join(opts) or 'defaults'})"


class MountPlan:
    """Everything ``apply`` does, in order; built by :func:`plan` from the spec."""

    def __init__(self, rootfs: str, readonly_root: bool):
        self.rootfs = rootfs
        self.readonly_root = readonly_root
        self.mounts: list[MountOp] = []
        self.devices: list[dict] = []
        self.masked: list[str] = []
        self.readonly: list[str] = []
        self.root_propagation = sc.MS_PRIVATE | sc.MS_REC


def parse_options(options: list[str]) -> tuple[int, int, str | None]:
    """OCI mount options -> (mount flags, propagation flags, data string)."""
    flags = 0
    propagation = 0
    data = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            set_, clear = _FLAG_OPTIONS[opt]
            flags = (flags | set_) & ~clear
        elif opt in _PROPAGATION:
            propagation |= _PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, propagation, ",".join(data) or None


def plan(spec: dict, bundle: str) -> MountPlan:
    """Turn the OCI spec's root, mounts, devices and masked paths into a MountPlan."""
    root = spec.get("root") or {}
    rootfs = root.get("path", "rootfs")
    if not os.path.isabs(rootfs):
        rootfs = os.path.join(bundle, rootfs)
    linux = spec.get("linux") or {}
    result = MountPlan(rootfs=rootfs, readonly_root=bool(root.get("readonly")))
    if linux.get("rootfsPropagation") in _PROPAGATION:
        result.root_propagation = _PROPAGATION[linux["rootfsPropagation"]]
    for m in spec.get("mounts") or []:
        flags, propagation, data = parse_options(m.get("options") or [])
        fstype = m.get("type")
        if fstype in (None, "bind", "none") or flags & sc.MS_BIND:
            flags |= sc.MS_BIND
            fstype = None
        source = m.get("source")
        result.mounts.append(
            MountOp(source, m["destination"], fstype, flags, data, propagation,
                    is_file=bool(flags & sc.MS_BIND) and _is_file_source(source)))
    devices = linux.get("devices")
    if devices is None:
        devices = [{"path": p, "type": t, "major": ma, "minor": mi, "fileMode": mo, "uid": 0, "gid": 0}
                   for p, t, ma, mi, mo in DEFAULT_DEVICES]
    result.devices = devices
    result.masked = list(linux.get("maskedPaths") or [])
    result.readonly = list(linux.get("readonlyPaths") or [])
    return result


def _is_file_source(source: str | None) -> bool:
    try:
        return source is not None and not stat.S_ISDIR(os.stat(source).st_mode)
    except OSError:
        return False


def apply_before_pivot(p: MountPlan, trace=None) -> None:
    """Mount everything under the rootfs; runs in the init's private mount namespace."""
    if trace:
        trace(f"mount --make-{'r' if p.root_propagation & sc.MS_REC else ''}"
              f"{next(k for k, v in _PROPAGATION.items() if v == p.root_propagation & ~sc.MS_REC)} /")
        trace(f"mount rbind {p.rootfs} -> {p.rootfs} (a mount point for pivot_root)")
    sc.mount(None, "/", None, p.root_propagation)
    sc.mount(p.rootfs, p.rootfs, None, sc.MS_BIND | sc.MS_REC)
    for op in p.mounts:
        _mount_one(p.rootfs, op, trace)
    if trace:
        trace("mknod " + " ".join(f"{d['path']}({d.get('type', 'c')} {d['major']}:{d['minor']})"
                                  for d in p.devices))
    _make_devices(p.rootfs, p.devices)


def _mount_one(rootfs: str, op: MountOp, trace) -> None:
    target = make_path(rootfs, op.dest, is_file=op.is_file)
    if trace:
        trace(op.describe())
    if op.flags & sc.MS_BIND:
        # A bind mount ignores MS_RDONLY and friends on the first call: they
        # take effect only through a second, remounting call.
        sc.mount(op.source, target, None, op.flags & (sc.MS_BIND | sc.MS_REC))
        extra = op.flags & ~(sc.MS_BIND | sc.MS_REC)
        if extra:
            sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | extra)
    elif op.fstype == "cgroup":
        mount_cgroupfs(target, op.flags)
    else:
        if op.fstype == "proc":
            _refuse_symlink(rootfs, op.dest)
        sc.mount(op.source or op.fstype, target, op.fstype, op.flags, op.data)
    if op.propagation:
        sc.mount(None, target, None, op.propagation)


def mount_cgroupfs(target: str, flags: int) -> None:
    """The container's view of its cgroups at ``target`` (runc's "cgroup" mount type).

    Runs after ``unshare(CLONE_NEWCGROUP)``, so each hierarchy mounted here
    has the container's own cgroup as its root. On cgroup v2 that is one
    cgroup2 mount; on v1 (and hybrid hosts) a tmpfs holding one mount per
    hierarchy the host has, named as on the host, then made read-only.
    """
    hierarchies = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, super_opts = fields[sep + 1], fields[sep + 3]
            if fstype in ("cgroup", "cgroup2") and fields[4].startswith("/sys/fs/cgroup"):
                hierarchies.append((fields[4], fstype, super_opts))
    if any(mp == "/sys/fs/cgroup" and t == "cgroup2" for mp, t, _ in hierarchies):
        sc.mount("cgroup2", target, "cgroup2", flags, None)
        return
    base = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    sc.mount("tmpfs", target, "tmpfs", base, "mode=755")
    for mountpoint, fstype, super_opts in hierarchies:
        name = os.path.basename(mountpoint)
        sub = os.path.join(target, name)
        os.mkdir(sub, 0o755)
        if fstype == "cgroup2":
            sc.mount("cgroup2", sub, "cgroup2", flags, None)
        else:
            controllers = ",".join(o for o in super_opts.split(",") if o not in ("rw", "ro"))
            sc.mount("cgroup", sub, "cgroup", flags, controllers)
    sc.mount(None, target, None, sc.MS_REMOUNT | base | (flags & sc.MS_RDONLY), "mode=755")


def _refuse_symlink(rootfs: str, dest: str) -> None:
    """An image whose /proc is a symlink could redirect procfs writes; refuse it."""
    path = os.path.join(rootfs, dest.lstrip("/"))
    if os.path.islink(path):
        raise SyscallError(40, "mount proc (destination is a symlink)", dest)  # ELOOP


def _make_devices(rootfs: str, devices: list[dict]) -> None:
    for dev in devices:
        make_path(rootfs, os.path.dirname(dev["path"]))  # /dev/cpu/0/cpuid with --privileged
        path = secure_join(rootfs, dev["path"])
        kind = stat.S_IFCHR if dev.get("type", "c") in ("c", "u") else stat.S_IFBLK
        mode = dev.get("fileMode", 0o666)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            raise SyscallError(21, "mknod", path) from None
        try:
            os.mknod(path, kind | (mode & 0o7777), os.makedev(dev["major"], dev["minor"]))
            os.chmod(path, mode & 0o7777)  # mknod's mode is filtered by the umask
            os.chown(path, dev.get("uid", 0), dev.get("gid", 0))
        except OSError as exc:
            raise SyscallError(exc.errno, "mknod", path) from None
    for target, link in DEV_SYMLINKS:
        if target == "/proc/kcore" and not os.path.exists(target):
            continue  # kernels without CONFIG_PROC_KCORE: no dangling /dev/core (as runc)
        path = secure_join(rootfs, link)
        if not os.path.lexists(path):
            os.symlink(target, path)


def pivot(rootfs: str) -> None:
    """pivot_root into rootfs and detach the old root.

    ``pivot_root(".", ".")`` stacks the old root on top of the new one at
    "/"; after fchdir to the old root we can lazily unmount it, leaving only
    the new root. This needs no temporary directory inside the image (runc's
    trick). The old root is made rslave first so the unmount cannot
    propagate back to the host.
    """
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        sc.pivot_root(".", ".")
        os.fchdir(old_root)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def apply_after_pivot(p: MountPlan, trace=None) -> None:
    """Mask and lock paths, then make / read-only if asked; runs inside the new root."""
    if trace:
        trace(f"mask (tmpfs ro or /dev/null bind over) {' '.join(p.masked) or '-'}")
        trace(f"mount bind,remount,ro {' '.join(p.readonly) or '-'}")
    for path in p.masked:
        mask_path(path)
    for path in p.readonly:
        readonly_path(path)
    if p.readonly_root:
        if trace:
            trace("mount bind,remount,ro /")
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _locked_flags("/"))


def mask_path(path: str) -> None:
    """Hide ``path``: /dev/null over a file, an empty read-only tmpfs over a dir."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None)
    else:
        sc.mount("/dev/null", path, None, sc.MS_BIND)


def readonly_path(path: str) -> None:
    """Bind ``path`` onto itself and remount that bind read-only."""
    if not os.path.lexists(path):
        return
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _locked_flags(path))


def _locked_flags(path: str) -> int:
    """The nosuid/nodev/noexec flags already on ``path``'s mount.

    A read-only remount must repeat them, or the kernel refuses the remount
    of a mount whose flags are locked (EPERM).
    """
    st = os.statvfs(path)
    flags = 0
    if st.f_flag & os.ST_NOSUID:
        flags |= sc.MS_NOSUID
    if st.f_flag & os.ST_NODEV:
        flags |= sc.MS_NODEV
    if st.f_flag & os.ST_NOEXEC:
        flags |= sc.MS_NOEXEC
    return flags
