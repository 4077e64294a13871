"""docker's run-flag semantics, checked without root."""

import pytest

from minibox.engine import options
from minibox.errors import UsageError

PASSWD = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www:/var/www:/bin/false\nbob:x:1000:1000::/home/bob:/bin/sh\n"
GROUP = "root:x:0:\nwww-data:x:33:\nwheel:x:10:bob,root\nstaff:x:50:\n"


def test_env_order_later_wins_and_bare_name_copies_host(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nA=file\nB=file\n")
    env = options.merge_env(["A=image", "PATH=/bin"], [str(env_file)], ["B=flag", "HOME_COPY", "MISSING"],
                            host_env={"HOME_COPY": "/host"})
    assert env == ["A=file", "PATH=/bin", "B=flag", "HOME_COPY=/host"]


def test_env_file_with_space_in_name_is_rejected(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("BAD NAME=1\n")
    with pytest.raises(UsageError, match="whitespaces"):
        options.read_env_file(str(env_file))


@pytest.mark.parametrize("spec,expected", [
    ("/srv:/data", {"kind": "bind", "source": "/srv", "target": "/data", "readonly": False}),
    ("/srv:/data:ro", {"kind": "bind", "source": "/srv", "target": "/data", "readonly": True}),
    ("vol:/data", {"kind": "volume", "source": "vol", "target": "/data", "readonly": False}),
    ("/data", {"kind": "volume", "source": "", "target": "/data", "readonly": False}),
])
def test_volume_forms(spec, expected):
    parsed = options.parse_volume(spec)
    assert {k: parsed[k] for k in expected} == expected


@pytest.mark.parametrize("spec", ["/srv:data", "/srv:/", "a:b:c:d", "/srv:/d:bogus", "bad name!:/d"])
def test_bad_volumes_are_usage_errors(spec):
    with pytest.raises(UsageError):
        options.parse_volume(spec)


def test_command_line_follows_docker():
    image = {"Entrypoint": ["/init"], "Cmd": ["serve"]}
    assert options.command_line(image, None, []) == ["/init", "serve"]
    assert options.command_line(image, None, ["echo", "hi"]) == ["/init", "echo", "hi"]
    assert options.command_line(image, "sh", []) == ["sh"]
    assert options.command_line(image, "", ["ls"]) == ["ls"]
    assert options.command_line({}, None, []) == []


def test_user_by_name_number_and_group():
    assert options.resolve_user("www-data", PASSWD, GROUP) == {"uid": 33, "gid": 33}
    assert options.resolve_user("bob", PASSWD, GROUP) == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert options.resolve_user("4242", PASSWD, GROUP) == {"uid": 4242, "gid": 0}
    assert options.resolve_user("33:staff", PASSWD, GROUP) == {"uid": 33, "gid": 50}
    assert options.resolve_user("root", PASSWD, GROUP, ["staff"]) == {"uid": 0, "gid": 0, "additionalGids": [10, 50]}


def test_unknown_user_or_group_is_an_error():
    with pytest.raises(UsageError, match="unable to find user nobody"):
        options.resolve_user("nobody", PASSWD, GROUP)
    with pytest.raises(UsageError, match="unable to find group"):
        options.resolve_user("root:nogroup", PASSWD, GROUP)


def test_home_from_passwd():
    assert options.home_of(1000, PASSWD) == "/home/bob"
    assert options.home_of(7, PASSWD) == "/"
