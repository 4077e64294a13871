"""The netlink messages one container needs, written with socket + struct.

Networks are managed through pyroute2 (bridge.py): creating a bridge,
checking host routes, listing and removing links. But importing pyroute2's
client costs about 100 ms, more than the rest of ``minibox run`` together,
and each of its calls turns an asyncio loop. A container's veth pair needs
three kinds of message (RTM_GETLINK, RTM_NEWLINK, and RTM_DELLINK to undo;
the address and route inside the container's netns are inside.py's), so
they are built here from the kernel's own layouts
(``include/uapi/linux/rtnetlink.h``, ``if_link.h``, ``veth.h``) and sent
over a plain ``AF_NETLINK`` socket. Everything on this page can be checked
against ``ip -d link`` and ``strace -e sendto``.

A netlink message is a 16-byte ``nlmsghdr`` (length, type, flags, sequence,
port id), a fixed header for its family (``ifinfomsg`` for links) and a list
of attributes: (length, type, payload) padded to four bytes, where a payload
may itself be a list of attributes (a "nest").
"""

import os
import struct

# The C module under socket.py: the same socket type, without socket.py's
# import-time conversion of every constant into an enum (~5 ms).
import _socket as socket

from minibox.errors import Conflict, MiniboxError

# nlmsghdr types and flags (linux/netlink.h, linux/rtnetlink.h)
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400

# link attributes (linux/if_link.h, linux/veth.h)
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_NET_NS_FD = 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFF_UP = 0x1


_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, pad, type, index, flags, change
_RTATTR = struct.Struct("=HH")  # len, type
NLA_F_NESTED = 0x8000


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to four bytes (the length field excludes the padding)."""
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def attr_str(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def ifinfomsg(index: int = 0, up: bool = False) -> bytes:
    return _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """The attributes from ``offset`` on, by type (the last one wins, as in the kernel)."""
    out = {}
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            break
        out[kind & ~NLA_F_NESTED] = data[offset + _RTATTR.size:offset + length]
        offset += (length + 3) & ~3
    return out


class Socket:
    """A NETLINK_ROUTE socket that sends requests and waits for their answers.

    It lives in the caller's netns: the host's. (Inside a container's netns
    minibox uses ioctls instead, see inside.py.)
    """

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes, what: str) -> list[bytes]:
        """Send one request; returns the payloads of the answers (a GET's reply, or none).

        A kernel refusal becomes OSError(errno, "netlink <what>"), so the caller
        can tell EEXIST or ENODEV from the rest.
        """
        self.seq += 1
        seq = self.seq
        flags |= NLM_F_REQUEST | NLM_F_ACK
        self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, 0) + body)
        replies = []
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, mtype, _flags, mseq, _pid = _NLMSGHDR.unpack_from(data, offset)
                payload = data[offset + _NLMSGHDR.size:offset + length]
                offset += (length + 3) & ~3
                if mseq != seq:
                    continue  # an answer to an earlier request that gave up
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(code, f"netlink {what}: {os.strerror(code)}")
                    return replies  # the ACK: it always comes last
                if mtype == NLMSG_DONE:
                    return replies
                replies.append(payload)

    # -- links ---------------------------------------------------------------

    def link(self, name: str) -> tuple[int, int, int] | None:
        """``(index, mtu, flags)`` of the link ``name``, or None when there is none."""
        try:
            replies = self.request(RTM_GETLINK, 0, ifinfomsg() + attr_str(IFLA_IFNAME, name), f"get link {name}")
        except OSError as exc:
            if exc.errno == 19:  # ENODEV
                return None
            raise
        _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(replies[0])
        attrs = parse_attrs(replies[0], _IFINFOMSG.size)
        mtu = struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 1500
        return index, mtu, flags

    def add_veth(self, host_name: str, master: int, mtu: int, peer_netns_fd: int, peer_mac: str) -> None:
        """``host_name`` on bridge ``master`` and up; its peer ``eth0`` up in the other netns.

        One RTM_NEWLINK does it all (as ``ip link add NAME mtu M master BR up
        type veth peer name eth0 netns FD address MAC``): the peer is born in
        the container's netns, so no temporary name ever shows on the host.
        The peer cannot be set up in the same message: the kernel configures
        it before the pair is linked, and a veth without its peer refuses to
        open (ENOTCONN). configure_inside() sets it up.
        """
        peer = (ifinfomsg() + attr_str(IFLA_IFNAME, "eth0") + attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
                + attr_u32(IFLA_MTU, mtu) + attr(IFLA_ADDRESS, mac_bytes(peer_mac)))
        linkinfo = attr_str(IFLA_INFO_KIND, "veth") + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))
        body = (ifinfomsg(up=True) + attr_str(IFLA_IFNAME, host_name) + attr_u32(IFLA_MTU, mtu)
                + attr_u32(IFLA_MASTER, master) + attr(IFLA_LINKINFO, linkinfo))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"add veth {host_name}")

    def delete_link(self, name: str) -> bool:
        """Delete ``name``; False when it was already gone."""
        try:
            self.request(RTM_DELLINK, 0, ifinfomsg() + attr_str(IFLA_IFNAME, name), f"delete link {name}")
        except OSError as exc:
            if exc.errno == 19:  # ENODEV
                return False
            raise
        return True

def bridge_ready(device: str) -> tuple[int, int] | None:
    """``(index, mtu)`` of ``device`` when it exists and is up, else None.

    ensure_bridge() sets the bridge up only after giving it its address, so
    "up" means "ready": the common case (every run after the first) costs
    one RTM_GETLINK and no pyroute2.
    """
    with Socket() as nl:
        found = nl.link(device)
    if found is None or not found[2] & IFF_UP:
        return None
    return found[0], found[1]


def link_exists(name: str) -> bool:
    with Socket() as nl:
        return nl.link(name) is not None


def add_veth(host_name: str, bridge_index: int, mtu: int, netns_path: str, mac: str) -> None:
    """The container's veth pair; Conflict when a link of that name exists already."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Socket() as nl:
            nl.add_veth(host_name, bridge_index, mtu, fd, mac)
    except OSError as exc:
        if exc.errno == 17:  # EEXIST
            raise Conflict(f"network interface {host_name} or eth0 in {netns_path} already exists") from None
        raise MiniboxError(exc.strerror) from None
    finally:
        os.close(fd)


def remove_veth(name: str, grace: float = 0.02) -> bool:
    """Make sure the host end ``name`` of a container's veth pair is gone; True if we deleted it.

    A veth pair goes with the netns that holds its peer, and once the
    container's last process has exited the kernel removes it within a
    millisecond or so, in its own worker. Deleting it ourselves instead
    costs 10 to 30 ms: the caller waits in rcu_barrier() for an RCU grace
    period. So wait ``grace`` seconds for the kernel first, and delete only
    a pair whose netns lives on (shared through ``--network container:``).
    """
    import time

    deadline = time.monotonic() + grace
    with Socket() as nl:
        while nl.link(name) is not None:
            if time.monotonic() >= deadline:
                try:
                    return nl.delete_link(name)
                except OSError as exc:
                    raise MiniboxError(exc.strerror) from None
            time.sleep(0.0005)
    return False


def delete_link(name: str) -> bool:
    """Delete the host link ``name`` if it exists; True when something was removed."""
    try:
        with Socket() as nl:
            return nl.delete_link(name)
    except OSError as exc:
        raise MiniboxError(exc.strerror) from None
