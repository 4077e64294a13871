"""Bridges and the host's routes through pyroute2 (``IPRoute`` only).

The network-wide work: creating a bridge, giving it its gateway address,
refusing a subnet that overlaps a host route. It runs when a network is
created or its bridge is found missing, not in every ``run``: the
per-container veth, address and route are rtnl.py's, in the standard
library, because importing pyroute2 costs more than the rest of a start.
Each function opens its own short netlink session, so callers hold no
socket across the slow parts of container creation.
"""

import errno
import ipaddress
import os
import socket

from minibox.errors import Conflict, MiniboxError
from minibox.network._netlink import iproute

MAIN_TABLE = 254


def _ifname(msg) -> str:
    return msg.get_attr("IFLA_IFNAME")


def _lookup(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _netlink_failed(exc, op: str, what: str) -> MiniboxError:
    return MiniboxError(f"netlink {op} {what}: {os.strerror(exc.code)}")


def overlapping_route(ipr, subnet, own_index: int | None = None) -> str | None:
    """A host route (other than a default route or one on our bridge) that overlaps ``subnet``.

    ``subnet``: anything whose str() is a CIDR (an ipam.Subnet, an IPv4Network).
    """
    subnet = ipaddress.IPv4Network(str(subnet))
    for route in ipr.get_routes(family=socket.AF_INET, table=MAIN_TABLE):
        if route["dst_len"] == 0:
            continue
        oif = route.get_attr("RTA_OIF")
        if own_index is not None and oif == own_index:
            continue
        dst = ipaddress.IPv4Network(f"{route.get_attr('RTA_DST')}/{route['dst_len']}", strict=False)
        if dst.overlaps(subnet):
            dev = ""
            if oif is not None:
                links = ipr.get_links(oif)
                dev = f" dev {_ifname(links[0])}" if links else ""
            return f"{dst}{dev}"
    return None


def check_subnet_free(subnet, device: str) -> None:
    """Refuse a subnet that overlaps a route the host already has (Conflict, 125)."""
    IPRoute, _ = iproute()
    with IPRoute() as ipr:
        clash = overlapping_route(ipr, subnet, _lookup(ipr, device))
    if clash:
        raise Conflict(f"subnet {subnet} overlaps the host route {clash}")


def ensure_bridge(device: str, subnet, gateway: str) -> tuple[int, int]:
    """The bridge ``device`` up with ``gateway/prefix``; returns ``(ifindex, mtu)``.

    Idempotent and safe against a concurrent creator (EEXIST is success).
    The overlap check runs only when the bridge is missing: once it exists
    its own connected route is, by design, the overlapping one.
    """
    IPRoute, NetlinkError = iproute()
    with IPRoute() as ipr:
        index = _lookup(ipr, device)
        if index is None:
            clash = overlapping_route(ipr, subnet)
            if clash:
                raise Conflict(f"subnet {subnet} overlaps the host route {clash}")
            try:
                ipr.link("add", ifname=device, kind="bridge")
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise _netlink_failed(exc, "add bridge", device) from None
            index = _lookup(ipr, device)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=socket.AF_INET)}
        if (gateway, subnet.prefixlen) not in have:
            try:
                ipr.addr("add", index=index, address=gateway, prefixlen=subnet.prefixlen)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise _netlink_failed(exc, "add address to", device) from None
        ipr.link("set", index=index, state="up")
        mtu = ipr.get_links(index)[0].get_attr("IFLA_MTU")
    return index, mtu
