"""Load an OCI ``linux.seccomp`` filter through libseccomp.

``compile_rules`` is pure (unit-tested without root): it turns the spec into
libseccomp action codes and argument comparisons and rejects what it does not
understand, naming the field. ``compile_bpf`` feeds those to libseccomp (the
``minibox._seccomp`` cffi module, imported only here, only when a container
has a filter) and exports the BPF program; ``install`` loads a program on the
calling thread. ``prepare`` compiles ahead of time (in the runtime's parent,
before fork, optionally through an on-disk cache) so the container's init
only pays for the seccomp(2) call.
"""

import errno as _errno
import os

from minibox.errors import MiniboxError, SyscallError

# libseccomp's action encoding (seccomp.h); stable ABI, checked against the
# library by tests/integration/test_seccomp_load.py.
ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000

_SIMPLE_ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
}

# libseccomp's binary-tree layout: compiling costs ~10 ms more (paid once,
# cached), but the kernel installs it ~3x faster (it emulates the filter per
# syscall to fill its cache) and every syscall of the container walks
# O(log n) instead of O(n) comparisons.
OPTIMIZE = 2

# enum scmp_compare (seccomp.h).
OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}


def action_code(action: str, errno_ret: int | None = None) -> int:
    """OCI action name (+ errnoRet) -> libseccomp action value.

    ERRNO and TRACE carry a 16-bit return value; both default to EPERM, as
    in runc, when the spec gives none.
    """
    if action in _SIMPLE_ACTIONS:
        return _SIMPLE_ACTIONS[action]
    ret = _errno.EPERM if errno_ret is None else int(errno_ret)
    if not 0 <= ret <= 0xFFFF:
        raise MiniboxError(f"seccomp: errnoRet {ret} out of range")
    if action == "SCMP_ACT_ERRNO":
        return _ACT_ERRNO | ret
    if action == "SCMP_ACT_TRACE":
        return _ACT_TRACE | ret
    raise MiniboxError(f"seccomp: unsupported action {action!r}")


def arch_name(arch: str) -> str:
    """``SCMP_ARCH_X86_64`` -> ``x86_64``, libseccomp's spelling."""
    return arch.removeprefix("SCMP_ARCH_").lower()


def _conditions(args: list[dict], syscall: str) -> list[tuple[int, int, int, int]]:
    out = []
    for a in args:
        try:
            op = OPS[a["op"]]
            index = int(a["index"])
        except KeyError as e:
            raise MiniboxError(f"seccomp: {syscall}: bad argument condition {a!r} ({e})") from None
        if not 0 <= index <= 5:
            raise MiniboxError(f"seccomp: {syscall}: argument index {index} out of range 0-5")
        out.append((index, op, int(a.get("value", 0)), int(a.get("valueTwo", 0))))
    return out


def compile_rules(spec: dict) -> tuple[int, list[str], list[tuple[int, str, list]]]:
    """(default action, architectures, [(action, syscall name, conditions)]).

    Each rule's ``conditions`` is a list of (index, op, datum_a, datum_b)
    that must all hold. As runc does, when one entry names the same argument
    index twice its conditions are alternatives, so it becomes one rule per
    condition. Rules whose action equals the default are dropped
    (libseccomp refuses them, and they change nothing).
    """
    if spec.get("flags"):
        raise MiniboxError(f"seccomp: unsupported flags {spec['flags']!r}")
    default = action_code(spec.get("defaultAction", ""), spec.get("defaultErrnoRet"))
    arches = [arch_name(a) for a in spec.get("architectures") or ()]
    rules = []
    for entry in spec.get("syscalls") or ():
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
        action = action_code(entry.get("action", ""), entry.get("errnoRet"))
        if action == default:
            continue
        for name in names:
            conds = _conditions(entry.get("args") or (), name)
            indexes = [c[0] for c in conds]
            if len(set(indexes)) == len(indexes):
                rules.append((action, name, conds))
            else:
                rules.extend((action, name, [c]) for c in conds)
    return default, arches, rules


def compile_bpf(spec: dict) -> bytes:
    """Compile the filter ``spec`` (OCI linux.seccomp) to classic BPF with libseccomp.

    Syscall names this libseccomp does not know are skipped, as runc does,
    so one profile serves old and new kernels. This is the slow step (~28 ms
    for docker's default on three architectures), hence ``prepare``'s cache.
    """
    from minibox._seccomp import ffi, lib

    default, arches, rules = compile_rules(spec)
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise MiniboxError("seccomp_init: libseccomp refused the default action")
    try:
        _check(lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_NNP, 0), "seccomp_attr_set CTL_NNP")
        _check(lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_OPTIMIZE, OPTIMIZE),
               "seccomp_attr_set CTL_OPTIMIZE")
        for arch in arches:
            token = lib.seccomp_arch_resolve_name(arch.encode())
            if token == 0:
                raise MiniboxError(f"seccomp: unknown architecture {arch!r}")
            rc = lib.seccomp_arch_add(ctx, token)
            if rc != -_errno.EEXIST:
                _check(rc, "seccomp_arch_add", arch)
        for action, name, conds in rules:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp
                continue
            cmps = ffi.new("struct scmp_arg_cmp[]", len(conds) or 1)
            for i, (index, op, a, b) in enumerate(conds):
                cmps[i].arg, cmps[i].op, cmps[i].datum_a, cmps[i].datum_b = index, op, a, b
            _check(lib.seccomp_rule_add_array(ctx, action, nr, len(conds), cmps),
                   "seccomp_rule_add", name)
        fd = os.memfd_create("minibox-seccomp", os.MFD_CLOEXEC)
        try:
            _check(lib.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


def install(bpf: bytes) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER) a compiled program on the calling thread.

    Needs CAP_SYS_ADMIN or no_new_privs already set (EACCES otherwise).
    Never sets no_new_privs itself: docker's containers run with
    ``NoNewPrivs: 0`` unless asked.
    """
    from minibox._seccomp import ffi, lib

    count, rest = divmod(len(bpf), 8)
    if rest or not 0 < count <= 0xFFFF:
        raise MiniboxError(f"seccomp: bad compiled program of {len(bpf)} bytes")
    if lib.mb_seccomp_set_filter(ffi.from_buffer(bpf), count) == -1:
        raise SyscallError(ffi.errno, "seccomp SECCOMP_SET_MODE_FILTER")


# (canonical spec text, program) of the last prepare() in this process; a
# child forked after prepare() finds it here and skips libseccomp entirely.
_prepared: tuple[bytes, bytes] | None = None
_MAGIC = b"minibox-seccomp-bpf 1\n"


def _canonical(spec: dict) -> bytes:
    import json

    return json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()


def _tag() -> bytes:
    """What the compiled program depends on besides the spec."""
    from minibox._seccomp import lib

    v = lib.seccomp_version()
    u = os.uname()
    return f"libseccomp {v.major}.{v.minor}.{v.micro} opt{OPTIMIZE} {u.machine} {u.release}\n".encode()


def prepare(spec: dict, cache_dir: str | None = None) -> bytes:
    """Compile ``spec`` once, before fork or pivot_root, and remember it for ``load``.

    With ``cache_dir`` the program is also kept on disk, keyed by the exact
    canonical spec text (stored in the file and compared byte for byte, so a
    crc collision can never load the wrong filter) and by the libseccomp
    version, machine and kernel release. The file is written atomically. A
    cache directory that is not ours alone (0700, owned by this uid, not a
    symlink) is ignored: anyone able to write there could choose our filter.
    """
    global _prepared
    text = _canonical(spec)
    path = header = None
    if cache_dir and _private_dir(cache_dir):
        import zlib

        header = _MAGIC + _tag() + b"%d\n" % len(text) + text
        path = os.path.join(cache_dir, "%08x-%d.bpf" % (zlib.crc32(text), len(text)))
        try:
            with open(path, "rb") as f:
                data = f.read()
            if data.startswith(header) and len(data) > len(header):
                _prepared = (text, data[len(header):])
                return _prepared[1]
        except FileNotFoundError:
            pass
    bpf = compile_bpf(spec)
    _prepared = (text, bpf)
    if path:
        try:
            _write_atomic(path, header + bpf)
        except OSError:
            pass  # a cache that cannot be written only costs time
    return bpf


def _private_dir(path: str) -> bool:
    import stat

    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & 0o077)


def _write_atomic(path: str, data: bytes) -> None:
    from minibox.atomic import write_bytes

    write_bytes(path, data, 0o600)


def load(spec: dict) -> None:
    """Install ``spec`` on the calling thread: the prepared program if it matches, else compile now."""
    if _prepared is not None and _prepared[0] == _canonical(spec):
        install(_prepared[1])
    else:
        install(compile_bpf(spec))


def _check(rc: int, op: str, what: str | None = None) -> None:
    if rc < 0:
        raise SyscallError(-rc, op, what)
