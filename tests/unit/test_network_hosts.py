"""The managed block of peers in a container's /etc/hosts."""

from minibox.network.endpoint import render_peers

ENGINE_TEXT = "127.0.0.1\tlocalhost\n10.213.1.9\told-peer\n10.213.1.2\tc1\n192.0.2.7\tdb\n"


def _stale(addr):
    return addr.startswith("10.213.1.") and addr != "10.213.1.2"


def test_block_is_appended_and_old_peer_lines_dropped():
    text = render_peers(ENGINE_TEXT, [("10.213.1.3", "web abc123")], _stale)
    assert text == ("127.0.0.1\tlocalhost\n10.213.1.2\tc1\n192.0.2.7\tdb\n"
                    "# minibox network peers (managed)\n10.213.1.3\tweb abc123\n")


def test_block_is_replaced_not_repeated():
    once = render_peers(ENGINE_TEXT, [("10.213.1.3", "web")], _stale)
    twice = render_peers(once, [("10.213.1.4", ["api", "def456"])], _stale)
    assert twice.count("# minibox network peers") == 1
    assert "web" not in twice and twice.endswith("10.213.1.4\tapi def456\n")
    assert render_peers(twice, [], _stale).endswith("(managed)\n")
