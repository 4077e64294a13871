"""cgroup v2 device control: generate, load and attach a BPF_PROG_TYPE_CGROUP_DEVICE program.

v2 has no devices.allow: the kernel asks a BPF program attached to the
cgroup (attach type BPF_CGROUP_DEVICE) about every open and mknod of a
device node, passing ``struct bpf_cgroup_dev_ctx { u32 access_type; u32
major; u32 minor; }`` with ``access_type = access << 16 | type``; the
program returns 1 to allow, 0 to deny (EPERM). :func:`program` writes that
program from the emulated v1 state (see devices.py) in a dozen instruction
kinds, as runc's devicefilter does, so no compiler or libbpf is needed.

Loading uses the bpf(2) syscall through cffi in ABI mode (``syscall()``
from libc): no build step, and this module is imported only on v2 hosts
when a container has device rules.
"""

import errno
import os
import struct

from minibox.cgroups.devices import ACC_ALL, ANY, Emulator, effective_rules
from minibox.errors import SyscallError

# Instruction classes and operations (linux/bpf_common.h, linux/bpf.h).
LDX_MEM_W = 0x61      # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54    # BPF_ALU | BPF_AND | BPF_K
ALU32_RSH_K = 0x74    # BPF_ALU | BPF_RSH | BPF_K
ALU32_MOV_X = 0xBC    # BPF_ALU | BPF_MOV | BPF_X
ALU64_MOV_K = 0xB7    # BPF_ALU64 | BPF_MOV | BPF_K
JMP_JEQ_K = 0x15      # BPF_JMP | BPF_JEQ | BPF_K
JMP_JNE_K = 0x55      # BPF_JMP | BPF_JNE | BPF_K
JMP_EXIT = 0x95       # BPF_JMP | BPF_EXIT

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
_BPF_PROG_LOAD, _BPF_PROG_ATTACH, _BPF_PROG_DETACH = 5, 8, 9
_BPF_PROG_GET_FD_BY_ID, _BPF_PROG_QUERY = 13, 16
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_ATTR_SIZE = 128  # larger than any field we set; the kernel checks the tail is zero


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> tuple:
    return (code, dst, src, off, imm)


def encode(insns: list[tuple]) -> bytes:
    """``struct bpf_insn``: u8 code, u8 dst:4|src:4 (little-endian nibbles), s16 off, s32 imm."""
    return b"".join(struct.pack("<BBhi", c, (s << 4) | d, o, i) for c, d, s, o, i in insns)


def program(rules: list[dict]) -> list[tuple]:
    """The device filter for OCI device rules (standard allow list appended), as instructions.

    Registers after the prologue: r2 = type, r3 = access, r4 = major,
    r5 = minor. With a default of deny, each exception that fully covers the
    requested access allows; with a default of allow, each exception that
    overlaps it denies — the kernel v1 controller's own matching rules.
    """
    emu = Emulator.of(effective_rules(rules))
    out = [
        insn(LDX_MEM_W, 2, 1, 0),
        insn(ALU32_AND_K, 2, imm=0xFFFF),
        insn(LDX_MEM_W, 3, 1, 0),
        insn(ALU32_RSH_K, 3, imm=16),
        insn(LDX_MEM_W, 4, 1, 4),
        insn(LDX_MEM_W, 5, 1, 8),
    ]
    verdict = 0 if emu.default_allow else 1
    for ex in emu.exceptions:
        block = [insn(JMP_JNE_K, 2, imm=ex.kind)]
        if emu.default_allow:
            # deny when (access & ex.access) != 0
            block += [insn(ALU32_MOV_X, 1, 3), insn(ALU32_AND_K, 1, imm=ex.access),
                      insn(JMP_JEQ_K, 1, imm=0)]
        elif ex.access != ACC_ALL:
            # allow only when access has no bit outside ex.access
            block += [insn(ALU32_MOV_X, 1, 3), insn(ALU32_AND_K, 1, imm=ACC_ALL & ~ex.access),
                      insn(JMP_JNE_K, 1, imm=0)]
        if ex.major != ANY:
            block.append(insn(JMP_JNE_K, 4, imm=ex.major))
        if ex.minor != ANY:
            block.append(insn(JMP_JNE_K, 5, imm=ex.minor))
        block += [insn(ALU64_MOV_K, 0, imm=verdict), insn(JMP_EXIT)]
        # Every conditional jump in the block skips to the next block.
        n = len(block)
        out += [(c, d, s, n - i - 1, imm) if c in (JMP_JEQ_K, JMP_JNE_K) else (c, d, s, o, imm)
                for i, (c, d, s, o, imm) in enumerate(block)]
    out += [insn(ALU64_MOV_K, 0, imm=1 if emu.default_allow else 0), insn(JMP_EXIT)]
    return out


# ---------------------------------------------------------------- the kernel side

_lib = None


def _libc():
    global _lib
    if _lib is None:
        from cffi import FFI

        ffi = FFI()
        ffi.cdef("long syscall(long number, ...);")
        _lib = (ffi, ffi.dlopen(None))
    return _lib


def _bpf(cmd: int, attr: bytearray, op: str, path: str) -> int:
    import platform

    ffi, lib = _libc()
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise SyscallError(errno.ENOSYS, f"bpf {op} (unknown syscall number on {platform.machine()})", path)
    buf = ffi.new("char[]", bytes(attr))
    ret = lib.syscall(ffi.cast("long", nr), ffi.cast("int", cmd), buf, ffi.cast("unsigned int", len(attr)))
    if ret < 0:
        raise SyscallError(ffi.errno, f"bpf {op}", path)
    attr[:] = ffi.buffer(buf, len(attr))[:]
    return int(ret)


def load(insns: list[tuple], path: str = "") -> int:
    """BPF_PROG_LOAD a cgroup device program → its fd; a verifier log comes with the error."""
    ffi, _ = _libc()
    code = ffi.new("char[]", encode(insns))
    license = ffi.new("char[]", b"GPL")
    log = ffi.new("char[]", 65536)
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE, len(insns),
                     int(ffi.cast("uintptr_t", code)), int(ffi.cast("uintptr_t", license)),
                     1, 65536, int(ffi.cast("uintptr_t", log)))
    attr[48:48 + 16] = b"minibox_devices".ljust(16, b"\0")
    try:
        return _bpf(_BPF_PROG_LOAD, attr, "BPF_PROG_LOAD cgroup device program for", path)
    except SyscallError as exc:
        text = ffi.string(log).decode(errors="replace").strip()
        if text:
            exc.strerror = f"{exc.strerror} (verifier: {text.splitlines()[-1]})"
        raise


def attached(cgroup_fd: int, path: str) -> list[int]:
    """Ids of the device programs attached to the cgroup itself (BPF_PROG_QUERY)."""
    ffi, _ = _libc()
    ids = ffi.new("uint32_t[]", 64)
    attr = bytearray(_ATTR_SIZE)
    # target_fd, attach_type, query_flags, attach_flags, prog_ids (u64), prog_cnt
    struct.pack_into("<IIIIQI", attr, 0, cgroup_fd, BPF_CGROUP_DEVICE, 0, 0,
                     int(ffi.cast("uintptr_t", ids)), 64)
    _bpf(_BPF_PROG_QUERY, attr, "BPF_PROG_QUERY", path)
    count = struct.unpack_from("<I", attr, 24)[0]
    return [ids[i] for i in range(min(count, 64))]


def attach(path: str, rules: list[dict]) -> None:
    """Load the filter for ``rules`` and attach it to the cgroup dir ``path``.

    BPF_F_ALLOW_MULTI lets the programs of parent cgroups (systemd's) run as
    well; programs minibox attached before (a docker ``update``) are then
    detached, so only the newest rules apply. The attachment keeps the
    program alive after its fd is closed.
    """
    prog = load(program(rules), path)
    try:
        cg = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(prog)
        raise SyscallError(exc.errno, "open", path) from None
    try:
        old = attached(cg, path)
        attr = bytearray(_ATTR_SIZE)
        struct.pack_into("<IIII", attr, 0, cg, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        _bpf(_BPF_PROG_ATTACH, attr, "BPF_PROG_ATTACH BPF_CGROUP_DEVICE to", path)
        for prog_id in old:
            _detach_id(cg, prog_id, path)
    finally:
        os.close(cg)
        os.close(prog)


def _detach_id(cg: int, prog_id: int, path: str) -> None:
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into("<I", attr, 0, prog_id)
    try:
        fd = _bpf(_BPF_PROG_GET_FD_BY_ID, attr, "BPF_PROG_GET_FD_BY_ID", path)
    except SyscallError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    try:
        attr = bytearray(_ATTR_SIZE)
        struct.pack_into("<IIII", attr, 0, cg, fd, BPF_CGROUP_DEVICE, 0)
        _bpf(_BPF_PROG_DETACH, attr, "BPF_PROG_DETACH", path)
    finally:
        os.close(fd)
