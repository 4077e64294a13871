"""--cap-add/--cap-drop/--privileged/--security-opt/--device -> OCI spec (no root)."""

import argparse
import json
import os
import stat

import pytest

from minibox.errors import UsageError
from minibox.runtime import capabilities
from minibox.security_flags import (
    DEFAULT_CAPS,
    add_arguments,
    apply_to_spec,
    parse_device,
    parse_security_opts,
    resolve_caps,
)

LAST = 40  # CAP_CHECKPOINT_RESTORE: tests do not depend on the host kernel


def parse(*argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def spec_for(*argv, spec=None):
    spec = spec if spec is not None else {"process": {}, "linux": {
        "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]}}
    return apply_to_spec(spec, parse(*argv), last_cap=LAST)


def test_default_caps_are_dockers_mask():
    assert capabilities.mask(DEFAULT_CAPS) == 0xA80425FB


def test_default_spec_has_default_caps_no_inheritable_no_ambient():
    caps = spec_for()["process"]["capabilities"]
    for key in ("bounding", "effective", "permitted"):
        assert capabilities.mask(caps[key]) == 0xA80425FB
    assert not caps.get("inheritable") and not caps.get("ambient")


def test_cap_add_accepts_docker_spellings():
    for spelling in ("NET_ADMIN", "net_admin", "CAP_NET_ADMIN", "cap_net_admin"):
        caps = resolve_caps([spelling], [], last_cap=LAST)
        assert "CAP_NET_ADMIN" in caps and len(caps) == len(DEFAULT_CAPS) + 1


def test_cap_drop():
    caps = resolve_caps([], ["chown", "NET_RAW"], last_cap=LAST)
    assert "CAP_CHOWN" not in caps and "CAP_NET_RAW" not in caps
    assert len(caps) == len(DEFAULT_CAPS) - 2


def test_cap_drop_all_then_add():
    assert resolve_caps([], ["ALL"], last_cap=LAST) == []
    assert resolve_caps(["NET_BIND_SERVICE"], ["all"], last_cap=LAST) == ["CAP_NET_BIND_SERVICE"]


def test_cap_add_all_minus_drop():
    caps = resolve_caps(["ALL"], ["SYS_ADMIN"], last_cap=LAST)
    assert len(caps) == LAST and "CAP_SYS_ADMIN" not in caps


def test_add_wins_over_drop_of_the_same_cap():
    assert "CAP_CHOWN" in resolve_caps(["CHOWN"], ["CHOWN"], last_cap=LAST)


def test_all_is_limited_by_the_kernels_last_cap():
    assert len(resolve_caps(["ALL"], [], last_cap=37)) == 38


def test_unknown_capability_is_a_usage_error_naming_it():
    with pytest.raises(UsageError, match='unknown capability: "CAP_FLY"'):
        spec_for("--cap-add", "fly")
    with pytest.raises(UsageError, match="--cap-drop"):
        spec_for("--cap-drop", "CAP_NOPE")


def test_default_has_seccomp_and_keeps_masked_paths():
    spec = spec_for()
    sc = spec["linux"]["seccomp"]
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO" and sc["defaultErrnoRet"] == 1
    assert spec["linux"]["maskedPaths"] == ["/proc/kcore"]
    assert spec["process"]["noNewPrivileges"] is False


def test_privileged():
    spec = {"process": {}, "linux": {"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
                                     "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}},
            "mounts": [{"destination": "/sys", "type": "sysfs",
                        "options": ["nosuid", "noexec", "nodev", "ro"]}]}
    spec = spec_for("--privileged", spec=spec)
    caps = spec["process"]["capabilities"]
    assert len(caps["bounding"]) == LAST + 1 == len(caps["effective"])
    assert "seccomp" not in spec["linux"]
    assert spec["linux"]["maskedPaths"] == [] and spec["linux"]["readonlyPaths"] == []
    assert "ro" not in spec["mounts"][0]["options"] and "rw" in spec["mounts"][0]["options"]
    assert {"allow": True, "access": "rwm"} in spec["linux"]["resources"]["devices"]
    paths = [d["path"] for d in spec["linux"]["devices"]]
    assert "/dev/null" in paths and len(paths) == len(set(paths))
    assert "/dev/console" not in paths and not any(p.startswith("/dev/pts/") for p in paths)


def test_security_opt_values():
    assert parse_security_opts(["no-new-privileges"]).no_new_privileges
    assert parse_security_opts(["no-new-privileges=true"]).no_new_privileges
    assert parse_security_opts(["no-new-privileges:true"]).no_new_privileges
    assert not parse_security_opts(["no-new-privileges=false"]).no_new_privileges
    assert parse_security_opts(["seccomp=unconfined"]).seccomp == "unconfined"
    assert parse_security_opts(["seccomp:unconfined"]).seccomp == "unconfined"
    assert parse_security_opts(["seccomp=builtin"]).seccomp == "default"
    assert parse_security_opts(["systempaths=unconfined"]).systempaths_unconfined
    parse_security_opts(["apparmor=unconfined", "label=disable"])
    for bad in ("no-new-privileges=maybe", "seccomp", "bogus=1", "apparmor=docker-default"):
        with pytest.raises(UsageError, match="--security-opt"):
            parse_security_opts([bad])


def test_no_new_privileges_and_unconfined_in_spec():
    spec = spec_for("--security-opt", "no-new-privileges", "--security-opt", "seccomp=unconfined")
    assert spec["process"]["noNewPrivileges"] is True
    assert "seccomp" not in spec["linux"]


def test_systempaths_unconfined_clears_masks_only():
    spec = spec_for("--security-opt", "systempaths=unconfined")
    assert spec["linux"]["maskedPaths"] == [] and spec["linux"]["readonlyPaths"] == []
    assert "seccomp" in spec["linux"]


def test_seccomp_profile_file(tmp_path):
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    sc = spec_for("--security-opt", f"seccomp={prof}")["linux"]["seccomp"]
    assert sc["defaultAction"] == "SCMP_ACT_ALLOW"
    assert sc["syscalls"] == [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]


def test_seccomp_profile_errors_name_the_file(tmp_path):
    with pytest.raises(UsageError, match="nope.json"):
        spec_for("--security-opt", f"seccomp={tmp_path}/nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="decoding seccomp profile .*bad.json"):
        spec_for("--security-opt", f"seccomp={bad}")


def test_parse_device_forms():
    assert parse_device("/dev/fuse") == ("/dev/fuse", "/dev/fuse", "rwm")
    assert parse_device("/dev/fuse:r") == ("/dev/fuse", "/dev/fuse", "r")
    assert parse_device("/dev/sda:/dev/xvda") == ("/dev/sda", "/dev/xvda", "rwm")
    assert parse_device("/dev/sda:/dev/xvda:rw") == ("/dev/sda", "/dev/xvda", "rw")
    for bad in ("dev/sda", "/dev/sda:xvda", "/dev/sda:/dev/x:rwx", "/a:/b:r:w", "/dev/sda:/x:rr"):
        with pytest.raises(UsageError, match="--device"):
            parse_device(bad)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null to stat")
def test_device_into_spec():
    st = os.stat("/dev/null")
    spec = spec_for("--device", "/dev/null:/dev/mynull:rw")
    paths = [d["path"] for d in spec["linux"]["devices"]]
    # The list replaces the runtime's standard devices, so it carries them too.
    assert {"/dev/null", "/dev/zero", "/dev/urandom", "/dev/tty"} <= set(paths)
    dev = spec["linux"]["devices"][-1]
    assert dev["path"] == "/dev/mynull" and dev["type"] == "c"
    assert (dev["major"], dev["minor"]) == (os.major(st.st_rdev), os.minor(st.st_rdev))
    assert dev["fileMode"] == stat.S_IMODE(st.st_mode)
    assert spec["linux"]["resources"]["devices"] == [
        {"allow": True, "type": "c", "major": dev["major"], "minor": dev["minor"], "access": "rw"}]


def test_device_that_is_not_a_device(tmp_path):
    f = tmp_path / "plain"
    f.write_text("x")
    with pytest.raises(UsageError, match="not a device node"):
        spec_for("--device", str(f))
    with pytest.raises(UsageError, match="no-such"):
        spec_for("--device", str(tmp_path / "no-such"))


def test_no_devices_leaves_no_device_keys():
    spec = spec_for()
    assert "devices" not in spec["linux"]
    assert "devices" not in spec["linux"].get("resources", {})
