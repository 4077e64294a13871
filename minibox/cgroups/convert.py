"""Pure conversions: docker's units and flags → OCI resources → cgroup file writes.

Nothing here touches the file system, so every rule (docker's units, the
memory-swap semantics, runc's shares→weight formula, write ordering) is
unit-tested without root. The drivers (v1.py, v2.py) only execute the plans
returned by :func:`v1_writes` and :func:`v2_writes`.
"""

import re

from minibox.errors import UsageError

DEFAULT_CPU_PERIOD = 100_000  # µs; docker's and the kernel's default CFS period
MIN_MEMORY = 6 * 1024 * 1024  # docker refuses limits below 6 MiB
UNLIMITED = -1

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
# docker's RAMInBytes: a number, an optional unit, an optional "i" and "b" ("1.5g", "100MiB").
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp]?)i?b?$", re.IGNORECASE)


def parse_bytes(text: str, flag: str = "size") -> int:
    """``100m`` → 104857600, with docker's binary units; UsageError names the flag."""
    m = _SIZE_RE.match(str(text).strip())
    if not m:
        raise UsageError(f"invalid value {text!r} for {flag}: expected a size such as 100m, 1g or 512k")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_memory_swap(text: str) -> int:
    """``--memory-swap``: a size, or ``-1`` for unlimited swap."""
    if str(text).strip() == "-1":
        return UNLIMITED
    return parse_bytes(text, "--memory-swap")


def parse_cpus(text: str, ncpu: int) -> int:
    """``--cpus 0.5`` → nano-CPUs (500000000), checked against the host's CPU count."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"invalid value {text!r} for --cpus: expected a number such as 0.5 or 2") from None
    if value < 0 or value != value:  # value != value: NaN
        raise UsageError(f"invalid value {text!r} for --cpus: must be positive")
    nano = round(value * 1e9)
    if nano and (nano < 10_000_000 or nano > ncpu * 1_000_000_000):
        raise UsageError(
            f"range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available (--cpus {text})"
        )
    return nano


def cpus_to_quota(nano_cpus: int, period: int = DEFAULT_CPU_PERIOD) -> tuple[int, int]:
    """nano-CPUs → (CFS quota µs, period µs), as dockerd does for ``--cpus``."""
    return nano_cpus * period // 1_000_000_000, period


def shares_to_weight(shares: int) -> int:
    """cgroup v1 ``cpu.shares`` [2..262144] → v2 ``cpu.weight`` [1..10000].

    The linear map runc (and crun) use, so a container gets the same weight
    under every runtime: 1024 (the default) → 39, 2 → 1, 262144 → 10000.
    """
    if shares <= 0:
        return 0
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """v1 ``blkio.weight`` [10..1000] → v2 ``io.weight`` [1..10000] (runc's map)."""
    if weight <= 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def swap_v2(limit: int | None, swap: int | None) -> int | None:
    """OCI memory.swap (memory+swap total, v1 memsw semantics) → v2 memory.swap.max.

    None means "leave it"; -1 means unlimited. v2 limits swap alone, so the
    total minus the memory limit is written; a total below the limit is an error.
    """
    if swap is None or swap == 0:
        return None
    if swap == UNLIMITED:
        return UNLIMITED
    if limit is None or limit <= 0:
        raise UsageError("a memory-swap limit needs a memory limit as well (set -m/--memory)")
    if swap < limit:
        raise UsageError("minimum memoryswap limit should be larger than memory limit")
    return swap - limit


def _num(value: int) -> str:
    return str(value)


def _max_or(value: int) -> str:
    return "max" if value is None or value < 0 else str(value)


def _dev(entry: dict) -> str:
    return f"{entry['major']}:{entry['minor']}"


# Throttle lists of OCI linux.resources.blockIO with their v1 file and v2 io.max key.
_THROTTLES = (
    ("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
    ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
    ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
    ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"),
)


def v1_writes(resources: dict, current_memsw: int | None = None) -> list[tuple[str, str]]:
    """OCI linux.resources → ordered [(file, value)] for cgroup v1.

    The file's prefix names the controller (``memory.limit_in_bytes`` →
    memory). Order matters: the kernel refuses a memory limit above the
    memsw limit, so when memsw grows (or becomes unlimited) it is written
    first; a CFS period is written before its quota. ``current_memsw`` is
    the memsw limit in force (None for a fresh cgroup, i.e. unlimited).
    """
    out: list[tuple[str, str]] = []
    mem = resources.get("memory") or {}
    limit, swap = mem.get("limit"), mem.get("swap")
    mem_writes = []
    if limit is not None:
        mem_writes.append(("memory.limit_in_bytes", _num(limit)))
    if swap is not None and swap != 0:
        memsw = ("memory.memsw.limit_in_bytes", _num(swap))
        grows = swap == UNLIMITED or (current_memsw is not None and current_memsw >= 0 and swap > current_memsw)
        mem_writes.insert(0, memsw) if grows else mem_writes.append(memsw)
    out += mem_writes
    if mem.get("reservation") is not None:
        out.append(("memory.soft_limit_in_bytes", _num(mem["reservation"])))
    if mem.get("swappiness") is not None:
        out.append(("memory.swappiness", _num(mem["swappiness"])))
    if mem.get("disableOOMKiller"):
        out.append(("memory.oom_control", "1"))

    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        out.append(("cpu.shares", _num(cpu["shares"])))
    if cpu.get("period"):
        out.append(("cpu.cfs_period_us", _num(cpu["period"])))
    if cpu.get("quota") is not None:
        out.append(("cpu.cfs_quota_us", _num(cpu["quota"] if cpu["quota"] > 0 else -1)))
    if cpu.get("cpus"):
        out.append(("cpuset.cpus", cpu["cpus"]))
    if cpu.get("mems"):
        out.append(("cpuset.mems", cpu["mems"]))

    pids = resources.get("pids") or {}
    if pids.get("limit") is not None:
        out.append(("pids.max", _max_or(pids["limit"] if pids["limit"] > 0 else -1)))

    bio = resources.get("blockIO") or {}
    if bio.get("weight"):
        out.append(("blkio.weight", _num(bio["weight"])))
    for wd in bio.get("weightDevice") or []:
        if wd.get("weight"):
            out.append(("blkio.weight_device", f"{_dev(wd)} {wd['weight']}"))
    for key, v1file, _ in _THROTTLES:
        for td in bio.get(key) or []:
            out.append((v1file, f"{_dev(td)} {td['rate']}"))

    from minibox.cgroups.devices import v1_writes as device_writes

    # Last: the rules, then runc's standard allow list (see devices.py).
    out += device_writes(resources.get("devices") or [])
    return out


def v2_writes(resources: dict) -> list[tuple[str, str]]:
    """OCI linux.resources → ordered [(file, value)] for the cgroup v2 unified tree.

    memory.swap.max holds swap alone (not memory+swap as v1 memsw does), so the
    OCI total is converted; cpu.shares become cpu.weight by runc's formula;
    the OCI ``unified`` map is passed through last (it is the v2-native escape hatch).
    Device rules are not written here: v2 has no devices files; V2Cgroup.apply
    attaches an eBPF program instead (ebpf.py).
    """
    out: list[tuple[str, str]] = []
    mem = resources.get("memory") or {}
    limit = mem.get("limit")
    swap = swap_v2(limit, mem.get("swap"))
    if limit is not None:
        out.append(("memory.max", _max_or(limit)))
    if swap is not None:
        out.append(("memory.swap.max", _max_or(swap)))
    if mem.get("reservation") is not None:
        out.append(("memory.low", _max_or(mem["reservation"])))
    if mem.get("disableOOMKiller"):
        raise UsageError("--oom-kill-disable is not supported on cgroup v2")

    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        out.append(("cpu.weight", _num(shares_to_weight(cpu["shares"]))))
    if cpu.get("quota") is not None or cpu.get("period"):
        quota = cpu.get("quota")
        period = cpu.get("period") or DEFAULT_CPU_PERIOD
        out.append(("cpu.max", f"{_max_or(quota if quota and quota > 0 else -1)} {period}"))
    if cpu.get("cpus"):
        out.append(("cpuset.cpus", cpu["cpus"]))
    if cpu.get("mems"):
        out.append(("cpuset.mems", cpu["mems"]))

    pids = resources.get("pids") or {}
    if pids.get("limit") is not None:
        out.append(("pids.max", _max_or(pids["limit"] if pids["limit"] > 0 else -1)))

    bio = resources.get("blockIO") or {}
    if bio.get("weight"):
        out.append(("io.weight", f"default {blkio_weight_to_io_weight(bio['weight'])}"))
    for wd in bio.get("weightDevice") or []:
        if wd.get("weight"):
            out.append(("io.weight", f"{_dev(wd)} {blkio_weight_to_io_weight(wd['weight'])}"))
    for key, _, v2key in _THROTTLES:
        for td in bio.get(key) or []:
            out.append(("io.max", f"{_dev(td)} {v2key}={td['rate']}"))

    for name, value in (resources.get("unified") or {}).items():
        out.append((name, str(value)))
    return out


def controller_of(filename: str) -> str:
    """``memory.limit_in_bytes`` → ``memory``: the v1 controller owning a file."""
    return filename.split(".", 1)[0]
