"""Address management for one network: pure allocation plus a locked lease file.

Why a lease file and a lock instead of asking the kernel: the addresses of
containers that are being created (veth not there yet) or whose runtime was
SIGKILLed (veth gone, record still there) are only known to minibox. The lease
file is the single source of truth, read and rewritten under ``flock`` so that
concurrent ``minibox run`` processes never hand out one address twice; it is
rewritten atomically so that a crash never leaves it half written. Leases of
containers that no longer exist (the caller's ``is_alive`` says so) are
reclaimed, and handed back to the caller so it can remove their leftovers.
"""

import errno
import fcntl
import json
import os
from contextlib import contextmanager

from minibox.errors import Conflict, MiniboxError, NotFound, SyscallError, UsageError

LEASES = "leases.json"
LOCK = "leases.lock"


# --------------------------------------------------------------------------- pure


def parse_address(text: str) -> int:
    """Dotted-quad IPv4 ``text`` as an integer; strict (no shorthand, no leading zeros)."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and p.isascii() and len(p) <= 3 for p in parts):
        raise ValueError(f"{text!r} is not an IPv4 address")
    if any(len(p) > 1 and p[0] == "0" for p in parts) or any(int(p) > 255 for p in parts):
        raise ValueError(f"{text!r} is not an IPv4 address")
    a, b, c, d = (int(p) for p in parts)
    return a << 24 | b << 16 | c << 8 | d


def format_address(value: int) -> str:
    return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


class Subnet:
    """An IPv4 block, as the integers IPAM works with.

    What IPAM needs of ``ipaddress.IPv4Network``, whose import alone costs
    about 2.5 ms of every ``run`` on a bridge. The slow paths (route overlap
    checks, ``network create``) still use ipaddress, via ``str(subnet)``.
    """

    __slots__ = ("network", "prefixlen")

    def __init__(self, network: int, prefixlen: int):
        self.network = network
        self.prefixlen = prefixlen

    @property
    def broadcast(self) -> int:
        return self.network | ((1 << (32 - self.prefixlen)) - 1)

    def __contains__(self, address) -> bool:
        value = parse_address(address) if isinstance(address, str) else address
        return self.network <= value <= self.broadcast

    def __str__(self) -> str:
        return f"{format_address(self.network)}/{self.prefixlen}"

    __repr__ = __str__


def parse_subnet(cidr: str) -> Subnet:
    """The block ``cidr`` (``10.88.0.0/16``); host bits set or a block too small → UsageError."""
    address, _, bits = cidr.partition("/")
    try:
        network = parse_address(address)
        if not (bits.isdigit() and bits.isascii()) or int(bits) > 32:
            raise ValueError(f"invalid prefix length /{bits}")
        prefixlen = int(bits)
        host_bits = (1 << (32 - prefixlen)) - 1
        if network & host_bits:
            raise ValueError("it has host bits set")
    except ValueError as exc:
        raise UsageError(f"invalid subnet {cidr!r}: {exc}") from None
    if prefixlen > 30:
        raise UsageError(f"invalid subnet {cidr}: a /{prefixlen} leaves no room for containers")
    return Subnet(network, prefixlen)


def gateway_of(net: Subnet) -> str:
    """The bridge's own address: the first host of the subnet (docker's choice)."""
    return format_address(net.network + 1)


def pick_address(net: Subnet, used, requested: str | None = None) -> str:
    """A free host address of ``net`` not in ``used`` (strings), or ``requested``.

    The network address, the gateway (.1) and the broadcast address are never
    handed out. Addresses are taken lowest first, as docker does, so a reused
    address is the common case and the leases stay small.
    """
    used = set(used)
    if requested is not None:
        try:
            value = parse_address(requested)
        except ValueError:
            raise UsageError(f"invalid IP address {requested!r}") from None
        if value not in net:
            raise UsageError(f"IP address {requested} is not in subnet {net}")
        if value in (net.network, net.broadcast, net.network + 1):
            raise UsageError(f"IP address {requested} is reserved in subnet {net}")
        if requested in used:
            raise Conflict(f"IP address {requested} is already in use on this network")
        return requested
    # Walk integers rather than listing hosts: a /8 has 16M of them and the
    # walk stops at the first gap anyway.
    for value in range(net.network + 2, net.broadcast):
        text = format_address(value)
        if text not in used:
            return text
    raise Conflict(f"no free IP address left in subnet {net}")


def mac_for(ip: str) -> str:
    """docker's scheme: 02:42 then the four bytes of the IPv4 address (local, unicast, stable)."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def reclaimable(leases: dict, is_alive) -> list[str]:
    """Ids of the leases whose container no longer exists."""
    return [cid for cid in leases if not is_alive(cid)]


# --------------------------------------------------------------------------- files


def container_exists(root: str):
    """The default ``is_alive``: the engine's record dir is there.

    A container whose dir is gone was removed (or never finished being
    created and was cleaned up); its lease may be reclaimed.
    """
    base = os.path.join(root, "containers")
    return lambda cid: os.path.isdir(os.path.join(base, cid))


def write_json_atomic(path: str, data, durable: bool = True) -> None:
    """tmp (+ fsync) + rename in the same directory: readers see old or new, never half."""
    from minibox.atomic import write_bytes

    write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode(), durable=durable)

def read_json(path: str, default):
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except json.JSONDecodeError as exc:
        raise MiniboxError(f"corrupt state file {path}: {exc}") from None


@contextmanager
def flocked(path: str):
    """Hold an exclusive flock on ``path`` (a lock file that is never replaced).

    The lock is on a separate file because the data file is swapped by
    rename, and a lock on a replaced inode would protect nothing.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise SyscallError(exc.errno or errno.EIO, "flock", path) from None
        yield
    finally:
        os.close(fd)


class LeaseStore:
    """The leases of one network, in ``<root>/network/<name>/leases.json``.

    The file maps container id → lease dict: ``ip``, ``name``, ``aliases``,
    ``host_veth``, ``ports`` (published ports) — everything needed to undo a
    connection without the container's record.
    """

    def __init__(self, directory: str):
        self.dir = directory
        self.path = os.path.join(directory, LEASES)
        self.lock_path = os.path.join(directory, LOCK)

    @contextmanager
    def locked(self):
        """The leases, locked; changes to the yielded dict are saved on success.

        The directory is the network's and is never created here: a network
        removed while a container was joining must not come back half-made.
        """
        if not os.path.isdir(self.dir):
            raise NotFound(f"network state {self.dir} does not exist")
        with flocked(self.lock_path):
            leases = read_json(self.path, {})
            before = json.dumps(leases, sort_keys=True)
            yield leases
            if json.dumps(leases, sort_keys=True) != before:
                # Not fsync'ed (its four fsyncs were the slowest part of a
                # container's network under disk load): leases are runtime
                # state, like the container records. A killed runtime loses
                # nothing (the page cache stays); after a machine crash no
                # container runs, and the engine releases or retakes each
                # lease as it sets its container straight.
                write_json_atomic(self.path, leases, durable=False)

    def load(self) -> dict:
        """A snapshot of the leases (no lock: the file is only ever replaced whole)."""
        return read_json(self.path, {})

    def allocate(self, net, container_id: str, is_alive, requested: str | None = None,
                 extra: dict | None = None, check=None):
        """Lease an address to ``container_id``; returns ``(ip, reclaimed)``.

        ``reclaimed`` maps the ids of dead containers whose leases were
        dropped to those leases, so the caller can remove their veths and port
        rules. ``check(leases)`` runs under the lock before the lease is
        written (the published-port check uses it) and may raise. A container
        that already holds a lease is a Conflict: connect twice is a bug.
        """
        with self.locked() as leases:
            reclaimed = {cid: leases.pop(cid) for cid in reclaimable(leases, is_alive)
                         if cid != container_id}
            if container_id in leases:
                raise Conflict(f"container {container_id[:12]} is already connected to this network")
            if check is not None:
                check(leases)
            ip = pick_address(net, (lease["ip"] for lease in leases.values()), requested)
            lease = dict(extra or {})
            lease["ip"] = ip
            leases[container_id] = lease
        return ip, reclaimed

    def update(self, container_id: str, **fields) -> None:
        """Record more about a lease (the veth name once it exists, the ports)."""
        with self.locked() as leases:
            if container_id in leases:
                leases[container_id].update(fields)

    def release(self, container_id: str):
        """Drop the lease of ``container_id``; returns it, or None (idempotent)."""
        with self.locked() as leases:
            return leases.pop(container_id, None)

    def reclaim(self, is_alive) -> dict:
        """Drop every lease whose container is dead; returns them by id."""
        with self.locked() as leases:
            return {cid: leases.pop(cid) for cid in reclaimable(leases, is_alive)}
