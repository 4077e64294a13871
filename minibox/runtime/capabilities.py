"""Linux capability names and the syscalls that set the five capability sets.

The name table is pure (the flag parser uses it without root); the set
operations go through the tiny ``minibox._caps`` cffi module, imported on
first use. Capabilities are carried as 64-bit masks, bit n = capability n.
"""

from minibox.errors import SyscallError

# Index = capability number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE.
CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
    "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBERS = {name: i for i, name in enumerate(CAP_NAMES)}

# prctl(2) options and arguments (linux/prctl.h).
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_lib = None


def _caps():
    global _lib
    if _lib is None:
        from minibox._caps import ffi, lib

        _lib = (ffi, lib)
    return _lib


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability number the running kernel knows (read once per process)."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _last_cap = int(f.read())
        except (OSError, ValueError):
            _last_cap = len(CAP_NAMES) - 1
    return _last_cap


def preload() -> None:
    """Load the cffi module and read the kernel's last capability now, before pivot_root."""
    _caps()
    last_cap()


def normalize(name: str) -> str:
    """``net_admin`` / ``NET_ADMIN`` / ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN`` (docker accepts all three)."""
    name = name.strip().upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def mask(names) -> int:
    """OR of the bits of ``names`` (full ``CAP_*`` names); ValueError names an unknown one."""
    m = 0
    for name in names or ():
        try:
            m |= 1 << CAP_NUMBERS[name]
        except KeyError:
            raise ValueError(f"unknown capability: {name!r}") from None
    return m


def names(m: int) -> list[str]:
    """The ``CAP_*`` names of the bits set in ``m``, in capability order."""
    return [n for i, n in enumerate(CAP_NAMES) if m >> i & 1]


def _prctl(option: int, a2: int = 0, a3: int = 0, op: str = "prctl", what=None) -> int:
    _, lib = _caps()
    rc = lib.mb_prctl(option, a2, a3, 0, 0)
    if rc == -1:
        raise SyscallError(_caps()[0].errno, op, what)
    return rc


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of the calling thread, as masks."""
    ffi, lib = _caps()
    sets = ffi.new("uint32_t[6]")
    if lib.mb_capget(sets) == -1:
        raise SyscallError(ffi.errno, "capget")
    return tuple(sets[i] | sets[i + 1] << 32 for i in (0, 2, 4))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) the three per-thread sets at once."""
    ffi, lib = _caps()
    sets = ffi.new("uint32_t[6]")
    for i, m in ((0, effective), (2, permitted), (4, inheritable)):
        sets[i], sets[i + 1] = m & 0xFFFFFFFF, m >> 32 & 0xFFFFFFFF
    if lib.mb_capset(sets) == -1:
        raise SyscallError(ffi.errno, "capset", hex(effective))


def bounding() -> int:
    """The bounding set of the calling thread, as a mask."""
    m = 0
    for cap in range(last_cap() + 1):
        if _prctl(PR_CAPBSET_READ, cap, op="prctl PR_CAPBSET_READ", what=CAP_NAMES[cap]) == 1:
            m |= 1 << cap
    return m


def drop_bounding(keep: int) -> None:
    """Drop every capability not in ``keep`` from the bounding set (needs CAP_SETPCAP)."""
    for cap in range(last_cap() + 1):
        if not keep >> cap & 1:
            name = CAP_NAMES[cap] if cap < len(CAP_NAMES) else str(cap)
            _prctl(PR_CAPBSET_DROP, cap, op="prctl PR_CAPBSET_DROP", what=name)


def set_ambient(m: int) -> None:
    """Make the ambient set exactly ``m`` (each bit must be permitted and inheritable)."""
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, op="prctl PR_CAP_AMBIENT_CLEAR_ALL")
    for cap in range(last_cap() + 1):
        if m >> cap & 1:
            _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap,
                   op="prctl PR_CAP_AMBIENT_RAISE", what=CAP_NAMES[cap])


def set_keepcaps(on: bool) -> None:
    """Keep the permitted set across a setresuid() away from uid 0."""
    _prctl(PR_SET_KEEPCAPS, int(on), op="prctl PR_SET_KEEPCAPS")


def set_no_new_privs() -> None:
    """No execve may gain privileges again (setuid bits, file caps) - irreversible."""
    _prctl(PR_SET_NO_NEW_PRIVS, 1, op="prctl PR_SET_NO_NEW_PRIVS")
