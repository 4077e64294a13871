"""--userns-remap pure parts: /etc/subuid parsing and allocation, the spec transform, the flags."""

import argparse

import pytest

from minibox.errors import UsageError
from minibox.runtime import userns
from minibox.security_flags import userns_remap


def test_parse_subid_skips_junk():
    text = "# comment\nalice:100000:65536\nbroken line\nbob:x:1\nminibox:231072:65536\n"
    assert userns.parse_subid(text) == [("alice", 100000, 65536), ("minibox", 231072, 65536)]


def test_existing_entry_is_reused():
    assert userns.find_or_allocate([("minibox", 300000, 1000)], "minibox") == (300000, 1000, False)


def test_new_range_goes_above_every_range_aligned():
    entries = [("alice", 100000, 65536), ("bob", 165536, 65536)]
    start, count, new = userns.find_or_allocate(entries, "minibox")
    assert new and count == 65536 and start % 65536 == 0
    assert start >= 165536 + 65536
    assert userns.find_or_allocate([], "minibox")[0] >= userns.FIRST_ID


def test_subid_range_appends_once(tmp_path, monkeypatch):
    monkeypatch.setattr(userns, "LOCK", str(tmp_path / "lock"))
    path = tmp_path / "subuid"
    path.write_text("alice:100000:65536")  # no trailing newline
    first = userns.subid_range("minibox", str(path))
    assert userns.subid_range("minibox", str(path)) == first
    assert path.read_text() == f"alice:100000:65536\nminibox:{first[0]}:65536\n"


def spec():
    return {"mounts": [{"destination": "/proc", "type": "proc"},
                       {"destination": "/sys/fs/cgroup", "type": "cgroup"}],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}}


def test_remap_spec_v1():
    s = userns.remap_spec(spec(), (131072, 65536), (196608, 65536), cgroup_v2=False)
    linux = s["linux"]
    assert linux["namespaces"][0] == {"type": "user"} and userns.wanted(linux)
    assert userns.map_text(linux["uidMappings"]) == "0 131072 65536\n"
    assert userns.map_text(linux["gidMappings"]) == "0 196608 65536\n"
    assert all(m["type"] != "cgroup" for m in s["mounts"])
    # mknod is impossible in a user namespace: the standard nodes are bind mounts.
    assert linux["devices"] == []
    binds = {m["destination"]: m["source"] for m in s["mounts"] if m["type"] == "bind"}
    assert binds["/dev/null"] == "/dev/null" and "/dev/urandom" in binds
    assert userns.idmap_of(s) == (linux["uidMappings"], linux["gidMappings"])


def test_remap_spec_v2_keeps_cgroup_and_maps_devices_to_host_paths():
    sp = spec()
    sp["linux"]["devices"] = [{"path": "/dev/xvda", "type": "b", "major": 8, "minor": 0}]
    s = userns.remap_spec(sp, (1, 2), (1, 2), cgroup_v2=True, host_dev={("b", 8, 0): "/dev/sda"})
    assert any(m["type"] == "cgroup" for m in s["mounts"])
    assert {"destination": "/dev/xvda", "type": "bind", "source": "/dev/sda",
            "options": ["bind", "nosuid", "noexec"]} in s["mounts"]


def test_not_wanted_without_a_new_user_namespace():
    assert not userns.wanted({"namespaces": [{"type": "user", "path": "/proc/1/ns/user"}]})
    assert userns.idmap_of({"linux": {"namespaces": [{"type": "pid"}]}}) is None


def flags(*argv):
    p = argparse.ArgumentParser()
    from minibox.security_flags import add_arguments

    add_arguments(p)
    return p.parse_args(list(argv))


def test_flag_logic(monkeypatch):
    monkeypatch.delenv("MINIBOX_USERNS_REMAP", raising=False)
    assert userns_remap(flags()) is None
    assert userns_remap(flags("--userns-remap", "default")) == "minibox"
    assert userns_remap(flags("--userns-remap", "alice")) == "alice"
    assert userns_remap(flags("--userns-remap", "alice", "--userns", "host")) is None
    monkeypatch.setenv("MINIBOX_USERNS_REMAP", "default")
    assert userns_remap(flags()) == "minibox"
    assert userns_remap(flags("--userns", "host")) is None
    with pytest.raises(UsageError, match="--userns"):
        userns_remap(flags("--userns", "private"))


def test_shift_id():
    maps = [{"containerID": 0, "hostID": 131072, "size": 65536}]
    assert userns.shift_id(0, maps) == 131072
    assert userns.shift_id(65535, maps) == 131072 + 65535
    assert userns.shift_id(70000, maps) == 70000  # unmapped: left alone (shows as nobody)
