"""/etc/hosts and /etc/resolv.conf contents for bridge containers."""

import pytest

from minibox.errors import UsageError
from minibox.network import etcfiles
from minibox.network.endpoint import render_peers


def test_loopback_resolvers_are_replaced():
    host = "# generated\nnameserver 127.0.0.53\noptions edns0\nsearch example.org\n"
    assert etcfiles.resolv_conf((), host) == (
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\noptions edns0\nsearch example.org\n")
    host = "nameserver 127.0.0.53\nnameserver 192.0.2.53\n"
    assert etcfiles.resolv_conf((), host) == "nameserver 192.0.2.53\n"


def test_dns_flag_wins_and_is_validated():
    assert etcfiles.resolv_conf(["192.0.2.1"], "nameserver 192.0.2.53\n") == "nameserver 192.0.2.1\n"
    with pytest.raises(UsageError, match="--dns"):
        etcfiles.resolv_conf(["dns.example"], "")


def test_add_host():
    assert etcfiles.parse_add_host(["db:10.0.0.5", "v6=[::1]"]) == [("10.0.0.5", ["db"]), ("::1", ["v6"])]
    for bad in ("db", "db:", ":10.0.0.5", "db:10.0.0"):
        with pytest.raises(UsageError, match="--add-host"):
            etcfiles.parse_add_host([bad])


def test_hosts_file_and_peer_block_rewrite():
    text = etcfiles.hosts("c1", "10.213.1.2", peers=[("10.213.1.3", ["web", "abc"])], extra=[("10.0.0.5", ["db"])])
    assert "10.213.1.2\tc1\n" in text and "10.0.0.5\tdb\n" in text
    assert text.endswith("# minibox network peers (managed)\n10.213.1.3\tweb abc\n")
    again = render_peers(text, [("10.213.1.4", ["api"])])
    assert "web" not in again and again.endswith("10.213.1.4\tapi\n")
    assert again.startswith(text.split("# minibox")[0])
    assert render_peers(again, []).endswith("(managed)\n")
