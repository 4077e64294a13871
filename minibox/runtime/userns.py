"""User namespaces: container root becomes an unprivileged host uid (docker's --userns-remap).

Three parts, each with one job:

- the subordinate id files: :func:`subid_range` finds (or appends, under a
  lock and atomically) the ``minibox`` entry of /etc/subuid and /etc/subgid,
  65536 ids above every range already handed out;
- the spec: :func:`remap_spec` adds the user namespace and its maps, and
  replaces what a user namespace cannot do (mknod of device nodes, mounting
  v1 cgroup hierarchies) by bind mounts of the host's nodes, as runc does;
- the process: :func:`spawn` orders namespace creation. The user namespace
  must come first so that every other namespace is owned by it (a PID
  namespace owned by the host's user namespace would refuse the container's
  procfs mount). A short-lived helper unshares CLONE_NEWUSER, waits while
  the runtime writes its uid/gid maps, becomes root of the namespace,
  unshares CLONE_NEWPID and clones the init with CLONE_PARENT, so the init
  is the runtime's own child (waitpid and the parent-death signal keep
  working) and PID 1 of a PID namespace the user namespace owns.
"""

import errno
import os
import stat

from minibox.errors import EXIT_RUNTIME, MiniboxError, SyscallError

SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
REMAP_NAME = "minibox"
RANGE_SIZE = 65536
FIRST_ID = 100000
LOCK = "/run/minibox/subid.lock"


# ---------------------------------------------------------------- /etc/subuid, /etc/subgid (pure parts)


def parse_subid(text: str) -> list[tuple[str, int, int]]:
    """``name:start:count`` lines → [(name, start, count)]; comments and junk are skipped."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or line.lstrip().startswith("#"):
            continue
        try:
            out.append((parts[0], int(parts[1]), int(parts[2])))
        except ValueError:
            continue
    return out


def find_or_allocate(entries: list[tuple[str, int, int]], name: str,
                     size: int = RANGE_SIZE) -> tuple[int, int, bool]:
    """(start, count, is_new): ``name``'s first range, else one above every range in use."""
    for n, start, count in entries:
        if n == name and count > 0:
            return start, count, False
    top = max([FIRST_ID] + [start + count for _n, start, count in entries])
    start = -(-top // size) * size  # aligned, as useradd and dockerd do
    return start, size, True


def subid_range(name: str = REMAP_NAME, path: str = SUBUID) -> tuple[int, int]:
    """``name``'s (start, count) in ``path``, appending a fresh range when it has none."""
    import fcntl

    from minibox.atomic import write_bytes

    os.makedirs(os.path.dirname(LOCK), mode=0o700, exist_ok=True)
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        start, count, new = find_or_allocate(parse_subid(text), name)
        if new:
            if text and not text.endswith("\n"):
                text += "\n"
            write_bytes(path, f"{text}{name}:{start}:{count}\n".encode(), mode=0o644)
    return start, count


# ---------------------------------------------------------------- the spec (pure)


def remap_spec(spec: dict, uid: tuple[int, int], gid: tuple[int, int], *, cgroup_v2: bool,
               host_dev: dict | None = None) -> dict:
    """Put the container in a new user namespace mapping 0.. to the host ranges ``uid``/``gid``.

    ``host_dev`` maps (type, major, minor) → a host node path for the devices
    to bind (default: the same path as in the container). The v1 cgroup
    mount is dropped (v1 hierarchies cannot be mounted from a user
    namespace); on v2 the container's own cgroup namespace allows it.
    """
    linux = spec.setdefault("linux", {})
    namespaces = linux.setdefault("namespaces", [])
    if not any(ns["type"] == "user" for ns in namespaces):
        namespaces.insert(0, {"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": uid[0], "size": uid[1]}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": gid[0], "size": gid[1]}]
    mounts = spec.setdefault("mounts", [])
    if not cgroup_v2:
        mounts[:] = [m for m in mounts if m.get("type") != "cgroup"]
    from minibox.runtime.mounts import DEFAULT_DEVICES

    devices = linux.get("devices")
    if devices is None:
        devices = [{"path": p, "type": t, "major": ma, "minor": mi} for p, t, ma, mi, _mo in DEFAULT_DEVICES]
    for dev in devices:
        source = (host_dev or {}).get((dev.get("type", "c"), dev["major"], dev["minor"]), dev["path"])
        mounts.append({"destination": dev["path"], "type": "bind", "source": source,
                       "options": ["bind", "nosuid", "noexec"]})
    # mknod is not allowed in a user namespace: the nodes come in as bind mounts instead.
    linux["devices"] = []
    return spec


def prepare_rootfs(rootfs: str, uid: int, gid: int) -> None:
    """Let the container's root (host ``uid``/``gid``) reach and own its rootfs.

    Engine layout: ``<root>/containers/<id>/merged``. As dockerd does for
    --userns-remap, the minibox root and ``containers`` become 0711
    (traversable, not listable; the ids are 64 random hex digits), the
    container's dir 0710 with the mapped gid as its group, and the rootfs's
    top directory is owned by the mapped root. Every other ancestor must
    already be searchable by anyone.
    """
    rootfs = os.path.abspath(rootfs)
    cdir = os.path.dirname(rootfs)
    above = [os.path.dirname(cdir), os.path.dirname(os.path.dirname(cdir))]
    for d in above:
        st = os.stat(d)
        if st.st_uid == 0 and not st.st_mode & 0o001:
            os.chmod(d, stat.S_IMODE(st.st_mode) | 0o111)
    os.chown(cdir, 0, gid)
    os.chmod(cdir, 0o710)
    os.chown(rootfs, uid, gid)
    d = os.path.dirname(above[-1])
    while True:
        if not os.stat(d).st_mode & 0o001:
            raise MiniboxError(f"--userns-remap: {d} is not searchable by others, so the remapped root "
                               f"(uid {uid}) cannot reach {rootfs}", EXIT_RUNTIME)
        if d == "/":
            break
        d = os.path.dirname(d)


def prepare_volumes(spec: dict, rootfs: str, uid: int, gid: int) -> None:
    """Named volumes (``<root>/volumes/<name>/_data``) of a remapped container: make their
    parents traversable (0711) and a volume still owned by host root the mapped root's, as
    dockerd does for volumes of a remapped daemon. Host bind mounts are left as they are."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(rootfs))))
    volumes = os.path.join(root, "volumes")
    for m in spec.get("mounts") or ():
        source = os.path.abspath(m.get("source") or "")
        if m.get("type") != "bind" or not source.startswith(volumes + "/") \
                or os.path.basename(source) != "_data":
            continue
        for d in (volumes, os.path.dirname(source)):
            st = os.stat(d)
            if st.st_uid == 0 and not st.st_mode & 0o001:
                os.chmod(d, stat.S_IMODE(st.st_mode) | 0o111)
        st = os.stat(source)
        if (st.st_uid, st.st_gid) == (0, 0):
            os.chown(source, uid, gid)


def host_device_paths(devices: list[dict], root: str = "/dev") -> dict:
    """(type, major, minor) → host path for the devices whose node is not at the same path."""
    wanted = {(d.get("type", "c"), d["major"], d["minor"]) for d in devices}
    out = {}
    for d in devices:
        try:
            st = os.stat(d["path"])
            if (_kind(st), os.major(st.st_rdev), os.minor(st.st_rdev)) == (d.get("type", "c"), d["major"], d["minor"]):
                out[(d.get("type", "c"), d["major"], d["minor"])] = d["path"]
        except OSError:
            pass
    missing = wanted - set(out)
    if missing:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                key = (_kind(st), os.major(st.st_rdev), os.minor(st.st_rdev))
                if key in missing:
                    out.setdefault(key, p)
    return out


def _kind(st) -> str:
    return "b" if stat.S_ISBLK(st.st_mode) else "c" if stat.S_ISCHR(st.st_mode) else "-"


def wanted(linux: dict) -> bool:
    """True when the spec asks for a new user namespace (not joining one by path)."""
    return any(ns["type"] == "user" and not ns.get("path") for ns in linux.get("namespaces") or [])


def map_text(mappings: list[dict]) -> str:
    """OCI uidMappings → the ``/proc/<pid>/uid_map`` text."""
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


# ---------------------------------------------------------------- the process


class UsernsFailed(MiniboxError):
    """The user namespace helper failed before the init existed."""


_CLONE_PARENT, _SIGCHLD = 0x00008000, 17
_SYS_CLONE = {"x86_64": 56, "aarch64": 220, "riscv64": 220, "ppc64le": 120, "s390x": 120}


def _clone_function():
    """A callable doing fork() but with the child's parent being our parent (CLONE_PARENT).

    Made before the helper forks: after unshare(CLONE_NEWUSER) nothing may
    need an import (the helper's credentials are not mapped yet).
    """
    from cffi import FFI

    ffi = FFI()
    ffi.cdef("long syscall(long number, ...);")
    lib = ffi.dlopen(None)
    nr = _SYS_CLONE.get(os.uname().machine)
    if nr is None:
        raise SyscallError(errno.ENOSYS, f"clone (unknown syscall number on {os.uname().machine})", None)
    z = ffi.cast("long", 0)
    args = (ffi.cast("long", nr), ffi.cast("long", _CLONE_PARENT | _SIGCHLD), z, z, z, z)

    def clone_parent() -> int:
        pid = lib.syscall(*args)
        if pid < 0:
            raise SyscallError(ffi.errno, "clone CLONE_PARENT", None)
        return int(pid)

    return clone_parent


def spawn(linux: dict, new_pid: bool, run_child, before_unshare=None) -> int:
    """Start ``run_child`` (never returns) as the container's init inside a new user namespace.

    ``before_unshare`` runs in the helper while it is still in the host's
    user namespace (joining the cgroup, which the init then inherits).
    Returns the init's host pid; the init is the caller's child.
    """
    from minibox import syscalls as sc
    from minibox.runtime.process import read_all

    clone_parent = _clone_function()
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    rep_r, rep_w = os.pipe2(os.O_CLOEXEC)
    helper = os.fork()
    if helper == 0:
        code = 1
        try:
            os.close(go_w)
            os.close(rep_r)
            if before_unshare is not None:
                before_unshare()
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(rep_w, b"U")
            if os.read(go_r, 1) != b"M":
                os._exit(1)
            sc.setgroups([])
            sc.setresgid(0)
            sc.setresuid(0)
            if new_pid:
                sc.unshare(sc.CLONE_NEWPID)
            pid = clone_parent()
            if pid == 0:
                os.close(go_r)
                os.close(rep_w)
                run_child()
                os._exit(EXIT_RUNTIME)
            os.write(rep_w, str(pid).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - the runtime must hear about it
            try:
                os.write(rep_w, f"E{exc}".encode())
            except OSError:
                pass
        os._exit(code)
    os.close(go_r)
    os.close(rep_w)
    try:
        first = os.read(rep_r, 1)
        if first == b"U":
            try:
                write_maps(helper, linux)
            finally:
                os.write(go_w, b"M")
        report = first + read_all(rep_r)
    finally:
        os.close(go_w)
        os.close(rep_r)
        os.waitpid(helper, 0)
    text = report[1:].decode(errors="replace") if report.startswith(b"U") else report.decode(errors="replace")
    if not text.isdigit():
        raise UsernsFailed(f"user namespace setup: {text.removeprefix('E') or 'the helper died'}",
                           EXIT_RUNTIME)
    return int(text)


# ---------------------------------------------------------------- idmapped image layers

_SYS_OPEN_TREE, _SYS_MOUNT_SETATTR = 428, 442  # the same on every architecture (new syscall table)
_OPEN_TREE_CLONE, _AT_RECURSIVE, _AT_EMPTY_PATH, _MOUNT_ATTR_IDMAP = 1, 0x8000, 0x1000, 0x00100000


def mapping_userns(uid_maps: list[dict], gid_maps: list[dict]) -> int:
    """An fd of a new user namespace holding these maps (for MOUNT_ATTR_IDMAP); the process that
    made it is gone by the time this returns."""
    from minibox import syscalls as sc

    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(done_w)
            os.close(ready_r)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(ready_w, b"U")
            os.read(done_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"U":
            raise UsernsFailed("could not create a user namespace for the idmapped layers")
        write_maps(pid, {"uidMappings": uid_maps, "gidMappings": gid_maps})
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(done_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def idmapped_tree(path: str, userns_fd: int) -> int:
    """A detached copy of the mount at ``path`` whose file owners are shifted by ``userns_fd``'s maps.

    open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP); the fd's
    ``/proc/self/fd/N`` path can be an overlay lowerdir (kernel 5.19+).
    """
    import struct

    from cffi import FFI

    ffi = FFI()
    ffi.cdef("long syscall(long number, ...);")
    lib = ffi.dlopen(None)
    fd = lib.syscall(ffi.cast("long", _SYS_OPEN_TREE), ffi.cast("int", -100), ffi.new("char[]", path.encode()),
                     ffi.cast("unsigned int", _OPEN_TREE_CLONE | _AT_RECURSIVE | os.O_CLOEXEC))
    if fd < 0:
        raise SyscallError(ffi.errno, "open_tree OPEN_TREE_CLONE", path)
    attr = ffi.new("char[]", struct.pack("<QQQQ", _MOUNT_ATTR_IDMAP, 0, 0, userns_fd))
    rc = lib.syscall(ffi.cast("long", _SYS_MOUNT_SETATTR), ffi.cast("int", fd), ffi.new("char[]", b""),
                     ffi.cast("unsigned int", _AT_EMPTY_PATH | _AT_RECURSIVE), attr, ffi.cast("size_t", 32))
    if rc < 0:
        err = ffi.errno
        os.close(int(fd))
        raise SyscallError(err, "mount_setattr MOUNT_ATTR_IDMAP", path)
    return int(fd)


def shift_id(value: int, mappings: list[dict]) -> int:
    """A container id → the host id under OCI ``mappings`` (unmapped ids stay as they are)."""
    for m in mappings:
        if m["containerID"] <= value < m["containerID"] + m["size"]:
            return m["hostID"] + value - m["containerID"]
    return value


def shifted_layer(layer: str, uid_maps: list[dict], gid_maps: list[dict], cache: str) -> str:
    """A copy of ``layer`` with every owner shifted by the maps, made once and kept in ``cache``.

    The fallback where the kernel cannot idmap overlay layers (before 5.19):
    ``cp -a`` keeps whiteouts, xattrs (overlay's opaque markers), hard links
    and modes; then every entry is lchown'ed. Built in a temp dir and renamed
    into place, so a crash never leaves a half-shifted layer in the cache.
    The copies of one store layer (``layers/<id>/diff``) live under
    ``cache/<id>/``, which the store removes with the layer (ImageStore.gc).
    """
    import hashlib
    import shutil
    import subprocess

    real = os.path.realpath(layer)
    key = hashlib.sha256(f"{real}|{map_text(uid_maps)}|{map_text(gid_maps)}".encode())
    layer_dir = os.path.join(cache, os.path.basename(os.path.dirname(real)))
    target = os.path.join(layer_dir, key.hexdigest()[:32])
    if os.path.isdir(target):
        return target
    os.makedirs(cache, mode=0o700, exist_ok=True)
    os.makedirs(layer_dir, mode=0o700, exist_ok=True)
    tmp = f"{target}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    r = subprocess.run(["cp", "-a", "--reflink=auto", os.path.realpath(layer), tmp],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MiniboxError(f"cannot copy layer {layer} for --userns-remap: {r.stderr.strip()}")
    for dirpath, dirnames, filenames in os.walk(tmp):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            st = os.lstat(name)
            mode = st.st_mode
            os.lchown(name, shift_id(st.st_uid, uid_maps), shift_id(st.st_gid, gid_maps))
            if not stat.S_ISLNK(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(name, stat.S_IMODE(mode))  # chown clears set-id bits: put them back
    os.rename(tmp, target)
    return target


def idmap_of(spec: dict) -> tuple[list[dict], list[dict]] | None:
    """The (uid maps, gid maps) a remapped container's layers must be shown through, else None."""
    linux = spec.get("linux") or {}
    if not wanted(linux) or not linux.get("uidMappings"):
        return None
    return linux["uidMappings"], linux.get("gidMappings") or linux["uidMappings"]


def write_maps(pid: int, linux: dict) -> None:
    """Write the uid and gid maps of ``pid``'s user namespace (as the privileged parent)."""
    for name, key in (("uid_map", "uidMappings"), ("gid_map", "gidMappings")):
        path = f"/proc/{pid}/{name}"
        text = map_text(linux.get(key) or [])
        if not text:
            raise UsernsFailed(f"a user namespace needs linux.{key}", EXIT_RUNTIME)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise SyscallError(exc.errno, f"write {text.strip()!r} to", path) from None
