"""The mount plan built from config.json, checked without root."""

from minibox import syscalls as sc
from minibox.runtime import mounts, spec


def test_option_parsing():
    flags, prop, data = mounts.parse_options(["nosuid", "noexec", "mode=755", "size=65536k", "rprivate"])
    assert flags == sc.MS_NOSUID | sc.MS_NOEXEC
    assert prop == sc.MS_PRIVATE | sc.MS_REC
    assert data == "mode=755,size=65536k"
    flags, _, _ = mounts.parse_options(["ro", "rw"])
    assert flags & sc.MS_RDONLY == 0


def test_default_spec_plan_has_docker_mounts_and_paths():
    p = mounts.plan(spec.default_spec(), "/bundle")
    assert p.rootfs == "/bundle/rootfs"
    dests = [m.dest for m in p.mounts]
    assert dests == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    sysfs = next(m for m in p.mounts if m.dest == "/sys")
    assert sysfs.flags & sc.MS_RDONLY
    assert "/proc/kcore" in p.masked and "/proc/sys" in p.readonly
    assert {d["path"] for d in p.devices} == {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                              "/dev/urandom", "/dev/tty"}


def test_bind_mount_of_a_file_is_planned_as_file(tmp_path):
    f = tmp_path / "hosts"
    f.write_text("x")
    s = spec.default_spec()
    s["mounts"] = [{"destination": "/etc/hosts", "type": "bind", "source": str(f), "options": ["rbind", "ro"]}]
    (op,) = mounts.plan(s, "/b").mounts
    assert op.is_file and op.flags & sc.MS_BIND and op.flags & sc.MS_REC and op.flags & sc.MS_RDONLY
    assert op.fstype is None


def test_docker_default_capabilities():
    caps = spec.default_spec()["process"]["capabilities"]
    assert len(caps["bounding"]) == 14
    assert caps["inheritable"] == [] and caps["ambient"] == []
