"""The hand-built netlink attributes: lengths, padding and nesting as the kernel reads them."""

import struct

from minibox.network import rtnl


def test_attribute_length_excludes_padding_and_payload_is_padded_to_four():
    raw = rtnl.attr_str(rtnl.IFLA_IFNAME, "eth0")  # 4 header + 5 bytes "eth0\0"
    length, kind = struct.unpack_from("=HH", raw)
    assert (length, kind) == (9, rtnl.IFLA_IFNAME)
    assert len(raw) == 12 and raw[9:] == b"\0\0\0"


def test_nested_veth_peer_parses_back_to_its_name_netns_and_mac():
    peer = (rtnl.ifinfomsg() + rtnl.attr_str(rtnl.IFLA_IFNAME, "eth0") + rtnl.attr_u32(rtnl.IFLA_NET_NS_FD, 7)
            + rtnl.attr(rtnl.IFLA_ADDRESS, rtnl.mac_bytes("02:42:0a:58:00:02")))
    linkinfo = rtnl.attr_str(rtnl.IFLA_INFO_KIND, "veth") + rtnl.attr(rtnl.IFLA_INFO_DATA,
                                                                        rtnl.attr(rtnl.VETH_INFO_PEER, peer))
    info = rtnl.parse_attrs(linkinfo)
    assert info[rtnl.IFLA_INFO_KIND] == b"veth\0"
    inner = rtnl.parse_attrs(rtnl.parse_attrs(info[rtnl.IFLA_INFO_DATA])[rtnl.VETH_INFO_PEER], 16)
    assert inner[rtnl.IFLA_IFNAME] == b"eth0\0"
    assert struct.unpack("=I", inner[rtnl.IFLA_NET_NS_FD]) == (7,)
    assert inner[rtnl.IFLA_ADDRESS] == bytes([2, 0x42, 10, 88, 0, 2])


def test_up_sets_the_flag_and_its_change_mask():
    _family, _type, index, flags, change = struct.unpack("=BxHiII", rtnl.ifinfomsg(index=3, up=True))
    assert (index, flags & rtnl.IFF_UP, change & rtnl.IFF_UP) == (3, 1, 1)
    assert struct.unpack("=BxHiII", rtnl.ifinfomsg())[3:] == (0, 0)
