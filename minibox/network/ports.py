"""Published ports: parse docker's ``-p``/``-P`` and pick free host ports.

Parsing is pure (unit-tested without root). Choosing host ports touches the
host only to bind a socket for an instant: that is the cheapest honest answer
to "is this port taken?", and it also covers ports held by other programs.
Ports published by other minibox containers are DNAT rules with no listening
socket behind them, so the caller also passes the ports its leases hold.
"""

import errno
from collections import namedtuple

from minibox.errors import Conflict, UsageError

PROTOCOLS = ("tcp", "udp")


class PortMapping(namedtuple("PortMapping", "container_port host_port host_ip proto", defaults=(0, "", "tcp"))):
    """One published port; ``host_port`` 0 means "any free port".

    A namedtuple rather than a dataclass: importing dataclasses (and inspect
    with it) costs more than all of this module on the ``run`` path.
    """

    __slots__ = ()

    def to_dict(self) -> dict:
        """The form saved in leases and endpoints; "any address" is spelled 0.0.0.0 there."""
        data = dict(self._asdict())
        data["host_ip"] = self.host_ip or "0.0.0.0"
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PortMapping":
        host_ip = data.get("host_ip", "")
        return cls(int(data["container_port"]), int(data["host_port"]),
                   "" if host_ip == "0.0.0.0" else host_ip, data.get("proto", "tcp"))

    def describe(self) -> str:
        """``80/tcp -> 0.0.0.0:8080``, the line ``docker port`` prints."""
        return f"{self.container_port}/{self.proto} -> {self.host_ip or '0.0.0.0'}:{self.host_port}"


def _port(text: str, spec: str, allow_zero: bool = False) -> int:
    if not text.isdigit():
        raise UsageError(f"invalid port {text!r} in published port {spec!r}")
    value = int(text)
    if not (0 if allow_zero else 1) <= value <= 65535:
        raise UsageError(f"invalid port {text!r} in published port {spec!r}: out of range")
    return value


def _range(text: str, spec: str, allow_zero: bool = False) -> list[int]:
    """``80`` or ``8000-8002`` → list of ports."""
    if "-" in text:
        low_text, high_text = text.split("-", 1)
        low, high = _port(low_text, spec), _port(high_text, spec)
        if high < low:
            raise UsageError(f"invalid port range {text!r} in published port {spec!r}")
        return list(range(low, high + 1))
    return [_port(text, spec, allow_zero)]


def _check_ip(text: str, spec: str) -> str:
    import socket

    try:
        socket.inet_pton(socket.AF_INET, text)
    except OSError:
        raise UsageError(f"invalid IP address {text!r} in published port {spec!r}") from None
    return "" if text == "0.0.0.0" else text


def parse_publish(spec: str) -> list[PortMapping]:
    """Parse one ``-p`` value: ``[IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]``.

    Ranges (``8000-8001:80-81``) are accepted as docker does; an empty host
    port (``IP::80``) or a bare container port means a random host port.
    """
    body, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in PROTOCOLS:
        raise UsageError(f"invalid protocol {proto!r} in published port {spec!r} (tcp or udp)")
    parts = body.split(":")
    if len(parts) == 1:
        host_ip, host_text, container_text = "", "", parts[0]
    elif len(parts) == 2:
        host_ip, host_text, container_text = "", parts[0], parts[1]
    elif len(parts) == 3:
        host_ip, host_text, container_text = parts
        host_ip = _check_ip(host_ip, spec)
    else:
        raise UsageError(f"invalid published port {spec!r}: expected [IP:]HOSTPORT:CONTAINERPORT[/PROTO]")
    if not container_text:
        raise UsageError(f"invalid published port {spec!r}: no container port")
    container_ports = _range(container_text, spec)
    if host_text:
        host_ports = _range(host_text, spec, allow_zero=True)
    else:
        host_ports = [0] * len(container_ports)
    if len(host_ports) != len(container_ports):
        raise UsageError(f"invalid published port {spec!r}: host and container ranges differ in size")
    return [PortMapping(c, h, host_ip, proto) for h, c in zip(host_ports, container_ports)]


def exposed_mappings(exposed) -> list[PortMapping]:
    """``-P``: every port of the image's ``ExposedPorts`` (``{"80/tcp": {}}``) on a random host port."""
    out = []
    for key in sorted(exposed or {}):
        port, _, proto = key.partition("/")
        out.extend(parse_publish(f"{port}/{proto or 'tcp'}"))
    return out


def mappings_from_args(publish, publish_all: bool = False, exposed=None) -> list[PortMapping]:
    """All mappings of ``-p`` values plus ``-P``; duplicates of one host port are refused."""
    mappings = []
    for spec in publish or ():
        mappings.extend(parse_publish(spec))
    if publish_all:
        taken = {(m.container_port, m.proto) for m in mappings}
        mappings.extend(m for m in exposed_mappings(exposed) if (m.container_port, m.proto) not in taken)
    seen = set()
    for m in mappings:
        if m.host_port == 0:
            continue
        key = (m.host_port, m.proto)
        if key in seen:
            raise Conflict(f"host port {m.host_port}/{m.proto} is published twice")
        seen.add(key)
    return mappings


def _socket_type(proto: str) -> int:
    import socket

    return socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM


def port_free(host_ip: str, port: int, proto: str) -> bool:
    """True when nothing on the host holds ``host_ip:port/proto`` right now."""
    import socket

    with socket.socket(socket.AF_INET, _socket_type(proto)) as sock:
        # SO_REUSEADDR so that connections lingering in TIME_WAIT do not count
        # as "in use"; a listener still makes bind fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host_ip or "0.0.0.0", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(f"host IP {host_ip} is not an address of this host") from None
            raise
    return True


def random_port(host_ip: str, proto: str) -> int:
    """A port the kernel's ephemeral allocator considers free."""
    import socket

    with socket.socket(socket.AF_INET, _socket_type(proto)) as sock:
        sock.bind((host_ip or "0.0.0.0", 0))
        return sock.getsockname()[1]


def leased_ports(leases: dict) -> set[tuple[int, str]]:
    """(host port, proto) pairs published by the containers in ``leases``."""
    out = set()
    for lease in leases.values():
        for data in lease.get("ports", ()):
            out.add((int(data["host_port"]), data.get("proto", "tcp")))
    return out


def assign_host_ports(mappings, taken: set[tuple[int, str]]) -> list[PortMapping]:
    """Give every mapping a free host port; a taken explicit port → Conflict naming it.

    ``taken`` holds the ports other minibox containers publish; it is updated
    with the ports chosen here so that one call never picks a port twice.
    """
    out = []
    for m in mappings:
        if m.host_port:
            where = f"{m.host_ip or '0.0.0.0'}:{m.host_port}/{m.proto}"
            if (m.host_port, m.proto) in taken or not port_free(m.host_ip, m.host_port, m.proto):
                raise Conflict(f"port is already allocated: {where}")
            port = m.host_port
        else:
            for _ in range(64):
                port = random_port(m.host_ip, m.proto)
                if (port, m.proto) not in taken:
                    break
            else:
                raise Conflict(f"no free host port for {m.container_port}/{m.proto}")
        taken.add((port, m.proto))
        out.append(PortMapping(m.container_port, port, m.host_ip, m.proto))
    return out
