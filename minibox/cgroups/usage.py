"""docker stats' numbers: two samples of a container's counters → one table row.

Sampling reads the container's cgroup (``Cgroup.stats()``) and its init's
/proc/<pid>/net/dev (the container's network namespace); everything else
here is pure arithmetic and docker's formatting, unit-tested without root.
"""

import time
from dataclasses import dataclass

HEADER = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


@dataclass
class Sample:
    t: float = 0.0
    cpu_ns: int = 0
    mem_usage: int = 0
    mem_limit: int = -1
    mem_inactive_file: int = 0
    pids: int = 0
    io_read: int = 0
    io_write: int = 0
    net_rx: int = 0
    net_tx: int = 0


def _size(value: float, base: float, units, fmt: str) -> str:
    i = 0
    while value >= base and i < len(units) - 1:
        value /= base
        i += 1
    return fmt % (value, units[i])


def bytes_binary(n: float) -> str:
    """docker's units.BytesSize: ``1.5MiB``, ``100MiB``, ``7.629GiB``."""
    return _size(float(n), 1024.0, _BINARY, "%.4g%s")


def bytes_decimal(n: float) -> str:
    """docker's units.HumanSizeWithPrecision(n, 3): ``1.05kB``, ``0B``, ``12.3MB``."""
    return _size(float(n), 1000.0, _DECIMAL, "%.3g%s")


def net_dev(text: str) -> tuple[int, int]:
    """/proc/<pid>/net/dev → (rx bytes, tx bytes) over every interface but lo."""
    rx = tx = 0
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if name.strip() == "lo" or len(fields) < 9:
            continue
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def take(cgroup, pid: int | None) -> Sample:
    """Read one sample of a running container's counters."""
    st = cgroup.stats()
    rx = tx = 0
    if pid:
        try:
            with open(f"/proc/{pid}/net/dev") as f:
                rx, tx = net_dev(f.read())
        except OSError:
            pass
    return Sample(
        t=time.monotonic(), cpu_ns=st["cpu_usage_ns"], mem_usage=st["memory_usage"],
        mem_limit=st["memory_limit"], mem_inactive_file=st.get("memory_inactive_file", 0),
        pids=st["pids_current"], io_read=st.get("io_read_bytes", 0), io_write=st.get("io_write_bytes", 0),
        net_rx=rx, net_tx=tx,
    )


def row(cid: str, name: str, prev: Sample | None, cur: Sample | None, host_mem: int) -> tuple[str, ...]:
    """One table row. CPU % is CPU time over wall time (100% = one full CPU, as docker shows);
    memory excludes the inactive page cache, as docker's CLI does; an unlimited
    cgroup's limit is the host's memory. A stopped container shows zeros."""
    if cur is None:
        return (cid, name, "0.00%", "0B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0")
    cpu = 0.0
    if prev is not None and cur.t > prev.t and cur.cpu_ns >= prev.cpu_ns:
        cpu = (cur.cpu_ns - prev.cpu_ns) / ((cur.t - prev.t) * 1e9) * 100.0
    usage = cur.mem_usage
    if cur.mem_inactive_file < usage:
        usage -= cur.mem_inactive_file
    limit = cur.mem_limit if 0 < cur.mem_limit < host_mem else host_mem
    mem_pct = usage / limit * 100.0 if limit > 0 else 0.0
    return (
        cid, name, f"{cpu:.2f}%", f"{bytes_binary(usage)} / {bytes_binary(limit)}", f"{mem_pct:.2f}%",
        f"{bytes_decimal(cur.net_rx)} / {bytes_decimal(cur.net_tx)}",
        f"{bytes_decimal(cur.io_read)} / {bytes_decimal(cur.io_write)}", str(cur.pids),
    )


def table(rows: list[tuple[str, ...]]) -> str:
    """docker's tabwriter layout: columns padded by 3, at least 10 wide, the last unpadded."""
    rows = [HEADER] + rows
    widths = [max(10, max(len(r[i]) for r in rows) + 3) for i in range(len(HEADER) - 1)]
    return "\n".join("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1] for r in rows)


def host_memory(meminfo: str = "/proc/meminfo") -> int:
    with open(meminfo) as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0
