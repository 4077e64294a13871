"""Bridges and veth pairs through rtnetlink (pyroute2 ``IPRoute`` only).

Each function opens its own short netlink session, so the callers hold no
socket across the slow parts of container creation. pyroute2 is imported
inside the functions: ``run --network none`` never pays for it.
"""

import errno
import ipaddress
import os
import socket

from minibox.errors import Conflict, MiniboxError
from minibox.network._netlink import iproute, rtnl_socket_in

MAIN_TABLE = 254


def _ifname(msg) -> str:
    return msg.get_attr("IFLA_IFNAME")


def _lookup(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _netlink_failed(exc, op: str, what: str) -> MiniboxError:
    return MiniboxError(f"netlink {op} {what}: {os.strerror(exc.code)}")


def overlapping_route(ipr, subnet: ipaddress.IPv4Network, own_index: int | None = None) -> str | None:
    """A host route (other than a default route or one on our bridge) that overlaps ``subnet``."""
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


def check_subnet_free(subnet: ipaddress.IPv4Network, device: str) -> None:
    """Refuse a subnet that overlaps a route the host already has (Conflict, 125)."""
    IPRoute, _ = iproute()
    with IPRoute() as ipr:
        clash = overlapping_route(ipr, subnet, _lookup(ipr, device))
    if clash:
        raise Conflict(f"subnet {subnet} overlaps the host route {clash}")


def ensure_bridge(device: str, subnet: ipaddress.IPv4Network, gateway: str) -> tuple[int, int]:
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


def delete_link(name: str) -> bool:
    """Delete the link ``name`` if it exists; True when something was removed."""
    IPRoute, NetlinkError = iproute()
    with IPRoute() as ipr:
        index = _lookup(ipr, name)
        if index is None:
            return False
        try:
            ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code in (errno.ENODEV, errno.ENOENT):
                return False
            raise _netlink_failed(exc, "delete", name) from None
    return True


def link_exists(name: str) -> bool:
    IPRoute, _ = iproute()
    with IPRoute() as ipr:
        return _lookup(ipr, name) is not None


def list_links(prefix: str) -> list[str]:
    """Names of the host's links that start with ``prefix``."""
    IPRoute, _ = iproute()
    with IPRoute() as ipr:
        return [n for n in (_ifname(m) for m in ipr.get_links()) if n and n.startswith(prefix)]


def bridge_has_ports(device: str) -> bool:
    IPRoute, _ = iproute()
    with IPRoute() as ipr:
        index = _lookup(ipr, device)
        if index is None:
            return False
        return any(m.get_attr("IFLA_MASTER") == index for m in ipr.get_links())


def add_veth(host_name: str, bridge_index: int, mtu: int, netns_path: str, mac: str) -> None:
    """A veth pair: ``host_name`` on the bridge and up, its peer ``eth0`` in the netns.

    The peer is created directly inside the container's netns (IFLA_NET_NS_FD
    in the peer's attributes), so no temporary name is ever visible on the
    host and two concurrent creations cannot collide on one.
    """
    IPRoute, NetlinkError = iproute()
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as ipr:
            try:
                ipr.link("add", ifname=host_name, kind="veth", mtu=mtu,
                         peer={"ifname": "eth0", "net_ns_fd": fd, "mtu": mtu, "address": mac})
            except NetlinkError as exc:
                if exc.code == errno.EEXIST:
                    raise Conflict(f"network interface {host_name} or eth0 in {netns_path} already exists") from None
                raise _netlink_failed(exc, "add veth", host_name) from None
            index = _lookup(ipr, host_name)
            ipr.link("set", index=index, master=bridge_index, state="up")
    finally:
        os.close(fd)


def configure_inside(netns_path: str, ip: str, prefixlen: int, gateway: str) -> None:
    """In the container's netns: lo up, eth0 up with its address, default route via the gateway."""
    IPRoute, NetlinkError = iproute()
    fd = rtnl_socket_in(netns_path)
    try:
        with IPRoute(fileno=fd) as ns:
            fd = None  # the IPRoute owns it now
            lo = _lookup(ns, "lo")
            eth0 = _lookup(ns, "eth0")
            if eth0 is None:
                raise MiniboxError(f"eth0 is missing in {netns_path}")
            ns.link("set", index=lo, state="up")
            ns.addr("add", index=eth0, address=ip, prefixlen=prefixlen)
            ns.link("set", index=eth0, state="up")
            ns.route("add", dst="0.0.0.0/0", gateway=gateway, oif=eth0)
    except NetlinkError as exc:
        raise _netlink_failed(exc, "configure eth0 in", netns_path) from None
    finally:
        if fd is not None:
            os.close(fd)


def mac_for(ip: str) -> str:
    """docker's scheme: 02:42 then the four bytes of the IPv4 address (local, unicast, stable)."""
    raw = socket.inet_aton(ip)
    return "02:42:" + ":".join(f"{b:02x}" for b in raw)
