"""docker's resource flags for run/create/update, turned into OCI linux.resources.

Flag values are checked here, before anything is created, so a bad value
ends the command with exit 125 and one line naming the flag.
"""

import os
import stat

from minibox.cgroups import convert
from minibox.errors import UsageError


def add_arguments(parser, update: bool = False) -> None:
    """The resource flags of ``docker run`` (``update=True``: those ``docker update`` takes)."""
    g = parser.add_argument_group("resources")
    g.add_argument("-m", "--memory", metavar="BYTES", help="memory limit (e.g. 100m, 1g)")
    g.add_argument("--memory-swap", metavar="BYTES",
                   help="memory plus swap limit; -1 for unlimited swap (default: twice --memory)")
    g.add_argument("--memory-reservation", metavar="BYTES", help="memory soft limit")
    g.add_argument("--cpus", metavar="N", help="number of CPUs (e.g. 0.5)")
    g.add_argument("-c", "--cpu-shares", metavar="N", type=_int("--cpu-shares"), help="CPU shares (relative weight)")
    g.add_argument("--cpu-period", metavar="US", type=_int("--cpu-period"), help="CFS period in microseconds")
    g.add_argument("--cpu-quota", metavar="US", type=_int("--cpu-quota"), help="CFS quota in microseconds")
    g.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs in which to allow execution (0-3, 0,1)")
    g.add_argument("--cpuset-mems", metavar="LIST", help="memory nodes in which to allow execution")
    g.add_argument("--pids-limit", metavar="N", type=_int("--pids-limit"), help="tune container pids limit (-1 for unlimited)")
    g.add_argument("--blkio-weight", metavar="N", type=_int("--blkio-weight"), help="block IO weight, 10 to 1000 (0 disables)")
    if update:
        return
    for flag in ("--device-read-bps", "--device-write-bps"):
        g.add_argument(flag, action="append", default=[], metavar="PATH:RATE",
                       help=f"limit {flag.split('-')[3]} rate (bytes per second) from a device")
    for flag in ("--device-read-iops", "--device-write-iops"):
        g.add_argument(flag, action="append", default=[], metavar="PATH:RATE",
                       help=f"limit {flag.split('-')[3]} rate (IO per second) from a device")
    g.add_argument("--cgroup-parent", metavar="PATH",
                   help="parent cgroup (relative: under minibox's own cgroup; absolute: from the root)")


def _int(flag):
    def conv(text):
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"invalid value {text!r} for {flag}: expected an integer") from None

    conv.__name__ = flag
    return conv


def _block_device(path: str, flag: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UsageError(f"invalid value for {flag}: {path}: {exc.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise UsageError(f"invalid value for {flag}: {path} is not a block device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def _throttle(values: list[str], flag: str, iops: bool) -> list[dict]:
    out = []
    for value in values or []:
        path, sep, rate = value.rpartition(":")
        if not sep or not path:
            raise UsageError(f"invalid value {value!r} for {flag}: expected PATH:RATE")
        if iops:
            if not rate.isdigit():
                raise UsageError(f"invalid value {value!r} for {flag}: the rate must be an integer")
            n = int(rate)
        else:
            n = convert.parse_bytes(rate, flag)
        major, minor = _block_device(path, flag)
        out.append({"major": major, "minor": minor, "rate": n})
    return out


def resources_from_args(args, ncpu: int | None = None, update: bool = False) -> dict:
    """Parsed flags → OCI linux.resources (only what was set). UsageError on bad values.

    docker's rules: --memory-swap needs --memory and must be at least as large;
    without it a container gets as much swap as memory (memsw = 2 × memory);
    --cpus conflicts with --cpu-period/--cpu-quota. ``update=True`` (docker
    update) changes only what is given: no implied swap, and --memory-swap
    alone is checked by the kernel against the limit in force.
    """
    ncpu = ncpu or os.cpu_count() or 1
    res: dict = {}
    get = lambda name: getattr(args, name, None)

    memory: dict = {}
    if get("memory") is not None:
        memory["limit"] = convert.parse_bytes(get("memory"), "--memory")
        if 0 < memory["limit"] < convert.MIN_MEMORY:
            raise UsageError("minimum memory limit allowed is 6MB (--memory)")
    if get("memory_swap") is not None:
        swap = convert.parse_memory_swap(get("memory_swap"))
    else:
        swap = 0
    if swap and update:
        if swap != convert.UNLIMITED and memory.get("limit") and swap < memory["limit"]:
            raise UsageError("minimum memoryswap limit should be larger than memory limit, see usage")
        memory["swap"] = swap
    elif swap:  # 0 means unset, as in docker
        if "limit" not in memory:
            raise UsageError("you should always set the memory limit when using the memoryswap limit (--memory)")
        if swap != convert.UNLIMITED and swap < memory["limit"]:
            raise UsageError("minimum memoryswap limit should be larger than memory limit, see usage")
        memory["swap"] = swap
    elif memory.get("limit") and not update:
        memory["swap"] = 2 * memory["limit"]
    if get("memory_reservation") is not None:
        memory["reservation"] = convert.parse_bytes(get("memory_reservation"), "--memory-reservation")
        if memory.get("limit") and memory["reservation"] > memory["limit"]:
            raise UsageError("minimum memory limit can not be less than memory reservation limit, see usage")
    if memory:
        res["memory"] = memory

    cpu: dict = {}
    if get("cpus") is not None:
        if get("cpu_period") or get("cpu_quota"):
            raise UsageError("conflicting options: --cpus and --cpu-period/--cpu-quota cannot both be set")
        nano = convert.parse_cpus(get("cpus"), ncpu)
        if nano:
            cpu["quota"], cpu["period"] = convert.cpus_to_quota(nano)
    if get("cpu_period") is not None:
        if get("cpu_period") and not 1000 <= get("cpu_period") <= 1_000_000:
            raise UsageError("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
        cpu["period"] = get("cpu_period")
    if get("cpu_quota") is not None:
        if 0 < get("cpu_quota") < 1000:
            raise UsageError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
        cpu["quota"] = get("cpu_quota")
    if get("cpu_shares") is not None:
        if get("cpu_shares") < 0:
            raise UsageError(f"invalid value {get('cpu_shares')} for --cpu-shares: must not be negative")
        if get("cpu_shares"):
            cpu["shares"] = get("cpu_shares")
    for flag, key in (("cpuset_cpus", "cpus"), ("cpuset_mems", "mems")):
        if get(flag) is not None:
            cpu[key] = _cpuset_list(get(flag), "--" + flag.replace("_", "-"))
    if cpu:
        res["cpu"] = cpu

    if get("pids_limit") is not None:
        res["pids"] = {"limit": get("pids_limit") if get("pids_limit") > 0 else -1}

    bio: dict = {}
    if get("blkio_weight") is not None:
        w = get("blkio_weight")
        if w and not 10 <= w <= 1000:
            raise UsageError(f"range of blkio weight is from 10 to 1000 (--blkio-weight {w})")
        if w:
            bio["weight"] = w
    for key, flag, iops in (
        ("throttleReadBpsDevice", "device_read_bps", False),
        ("throttleWriteBpsDevice", "device_write_bps", False),
        ("throttleReadIOPSDevice", "device_read_iops", True),
        ("throttleWriteIOPSDevice", "device_write_iops", True),
    ):
        entries = _throttle(get(flag), "--" + flag.replace("_", "-"), iops)
        if entries:
            bio[key] = entries
    if bio:
        res["blockIO"] = bio
    return res


def _cpuset_list(text: str, flag: str) -> str:
    """Validate a cpuset list such as ``0-2,4`` (the kernel's own syntax)."""
    text = text.strip()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and (not hi.isdigit() or int(hi) < int(lo))):
            raise UsageError(f"invalid value {text!r} for {flag}: expected a list such as 0-2,4")
    return text


def host_config(resources: dict) -> dict:
    """OCI linux.resources → docker's HostConfig fields, for ``inspect``."""
    mem, cpu = resources.get("memory") or {}, resources.get("cpu") or {}
    out = {}
    for key, value in (
        ("Memory", mem.get("limit")), ("MemorySwap", mem.get("swap")),
        ("MemoryReservation", mem.get("reservation")), ("CpuShares", cpu.get("shares")),
        ("CpuPeriod", cpu.get("period")), ("CpuQuota", cpu.get("quota")),
        ("CpusetCpus", cpu.get("cpus")), ("CpusetMems", cpu.get("mems")),
        ("PidsLimit", (resources.get("pids") or {}).get("limit")),
        ("BlkioWeight", (resources.get("blockIO") or {}).get("weight")),
    ):
        if value is not None:
            out[key] = value
    if cpu.get("quota") and cpu.get("period") == convert.DEFAULT_CPU_PERIOD:
        out["NanoCpus"] = cpu["quota"] * 10_000
    return out


def merge(old: dict, new: dict) -> dict:
    """linux.resources ``old`` updated with ``new``, section by section (docker update keeps the rest)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (old or {}).items()}
    for section, values in new.items():
        if isinstance(values, dict) and isinstance(out.get(section), dict):
            out[section].update(values)
        else:
            out[section] = values
    return out
