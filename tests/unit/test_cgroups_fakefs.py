"""The v1 and v2 drivers against a fake cgroupfs tree in tmp_path (no root).

The fake "kernel" is a replacement for fs.mkdir that fills a new cgroup
directory with control files the way the kernel would: on v1 a copy of the
hierarchy's file names (cpuset.cpus/mems empty), on v2 the files of the
controllers the parent enabled in cgroup.subtree_control.
"""

import os

import pytest

from minibox import cgroups
from minibox.cgroups import fs
from minibox.cgroups.v1 import V1Driver, find_mounts
from minibox.cgroups.v2 import V2Driver
from minibox.errors import MiniboxError, SyscallError

V1_FILES = {
    "cpu": ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"],
    "cpuacct": ["cpuacct.usage"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes",
               "memory.oom_control", "memory.usage_in_bytes", "memory.stat", "memory.failcnt"],
    "devices": ["devices.allow", "devices.deny"],
    "freezer": ["freezer.state"],
    "blkio": ["blkio.weight", "blkio.throttle.read_bps_device"],
    "pids": ["pids.max", "pids.current"],
}
V1_DEFAULTS = {"memory.memsw.limit_in_bytes": "9223372036854771712", "memory.limit_in_bytes": "9223372036854771712",
               "pids.max": "max", "cpuset.cpus": "", "cpuset.mems": "", "freezer.state": "THAWED",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"}
V2_FILES = {
    "memory": ["memory.max", "memory.swap.max", "memory.low", "memory.events", "memory.current", "memory.stat"],
    "cpu": ["cpu.weight", "cpu.max"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "io": ["io.weight", "io.max"],
    "pids": ["pids.max", "pids.current"],
}


def _touch(path, text=""):
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def v1tree(tmp_path, monkeypatch):
    root = tmp_path / "cgroup"
    for ctrl, files in V1_FILES.items():
        d = root / ctrl
        d.mkdir(parents=True)
        for name in ["cgroup.procs", "tasks"] + files:
            _touch(d / name, V1_DEFAULTS.get(name, "0"))
    _touch(root / "cpuset" / "cpuset.cpus", "0-3")
    _touch(root / "cpuset" / "cpuset.mems", "0")
    (root / "systemd").mkdir()
    _touch(root / "systemd" / "cgroup.procs")
    (root / "unified").mkdir()
    _touch(root / "unified" / "cgroup.controllers", "")
    # The runtime's own memory cgroup is nested, the others are at the root (as on this host).
    (root / "memory" / "process_api" / "me").mkdir(parents=True)
    proc = tmp_path / "self_cgroup"
    _touch(proc, "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/me\n3:cpuset:/\n1:cpu:/\n0::/\n")

    def fake_mkdir(path):
        if os.path.isdir(path):
            return False
        os.mkdir(path)
        hierarchy = os.path.relpath(path, root).split(os.sep)[0]
        for name in ["cgroup.procs", "tasks"] + V1_FILES[hierarchy]:
            _touch(os.path.join(path, name), V1_DEFAULTS.get(name, "0"))
        return True

    monkeypatch.setattr(fs, "mkdir", fake_mkdir)
    cgroups._drivers.clear()
    return root, proc


@pytest.fixture
def v2tree(tmp_path, monkeypatch):
    root = tmp_path / "cgroup2"
    root.mkdir()
    _touch(root / "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma")
    _touch(root / "cgroup.subtree_control", "")
    _touch(root / "cgroup.procs")
    proc = tmp_path / "self_cgroup"
    _touch(proc, "0::/\n")

    def fake_mkdir(path):
        if os.path.isdir(path):
            return False
        os.mkdir(path)
        with open(os.path.join(os.path.dirname(path), "cgroup.subtree_control")) as f:
            enabled = [c.lstrip("+") for c in f.read().split()]
        _touch(os.path.join(path, "cgroup.controllers"), " ".join(enabled))
        for name in ["cgroup.subtree_control", "cgroup.procs", "cgroup.freeze", "cgroup.events", "cgroup.kill"]:
            _touch(os.path.join(path, name))
        for ctrl in enabled:
            for name in V2_FILES.get(ctrl, []):
                _touch(os.path.join(path, name), "max" if name.endswith(".max") else "0")
        return True

    real_write = fs.write

    def fake_write(path, value):
        # The kernel adds "+ctrl" to the enabled set; a plain file would be overwritten.
        if path.endswith("cgroup.subtree_control"):
            with open(path) as f:
                enabled = f.read().split()
            value = " ".join(enabled + [value])
        real_write(path, value)

    monkeypatch.setattr(fs, "mkdir", fake_mkdir)
    monkeypatch.setattr(fs, "write", fake_write)
    cgroups._drivers.clear()
    return root, proc


def read(path):
    return open(path).read()


def test_detect(v1tree, v2tree):
    assert cgroups.detect(str(v1tree[0])) == "v1"
    assert cgroups.detect(str(v2tree[0])) == "v2"


def test_hybrid_opens_the_v1_driver_once(v1tree):
    root, proc = v1tree
    drv = cgroups.open_driver(str(root), str(proc))
    assert drv.version == 1
    assert cgroups.open_driver(str(root), str(proc)) is drv
    assert "systemd" not in drv.controllers() and "memory" in drv.controllers()


def test_read_self_cgroup_parses_comounted_and_named(tmp_path):
    p = tmp_path / "c"
    _touch(p, "5:cpu,cpuacct:/a\n4:name=systemd:/s\n0::/u\n")
    assert cgroups.read_self_cgroup(str(p)) == {"cpu": "/a", "cpuacct": "/a", "systemd": "/s", "": "/u"}


def test_comounted_hierarchy_is_one_directory(tmp_path):
    d = tmp_path / "cpu,cpuacct"
    d.mkdir()
    _touch(d / "cgroup.procs")
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    mounts = find_mounts(str(tmp_path))
    assert mounts == {"cpu": str(d), "cpuacct": str(d)}


def test_resolve_rules():
    assert cgroups.resolve("minibox/abc", "/process_api/me") == "/process_api/me/minibox/abc"
    assert cgroups.resolve("/minibox/abc", "/process_api/me") == "/minibox/abc"
    for bad in ("", "/", "../../etc", "a/../../b"):
        with pytest.raises(MiniboxError):
            cgroups.resolve(bad, "/x")


def test_v1_create_relative_goes_under_own_cgroup_per_controller(v1tree):
    root, proc = v1tree
    drv = V1Driver(str(root), cgroups.read_self_cgroup(str(proc)))
    cg = drv.create("minibox/c1")
    paths = cg.paths()
    assert paths["memory"] == str(root / "memory" / "process_api" / "me" / "minibox" / "c1")
    assert paths["pids"] == str(root / "pids" / "minibox" / "c1")
    assert all(os.path.isdir(p) for p in paths.values())
    # cpuset levels got the parent's cpus and mems, or tasks could not join.
    assert read(root / "cpuset" / "minibox" / "cpuset.cpus") == "0-3"
    assert read(os.path.join(paths["cpuset"], "cpuset.mems")) == "0"


def test_v1_create_absolute_is_from_the_root(v1tree):
    root, proc = v1tree
    drv = V1Driver(str(root), cgroups.read_self_cgroup(str(proc)))
    assert drv.create("/mb/c2").paths()["memory"] == str(root / "memory" / "mb" / "c2")


def test_v1_apply_add_and_reopen(v1tree):
    root, proc = v1tree
    drv = V1Driver(str(root), cgroups.read_self_cgroup(str(proc)))
    cg = drv.create("minibox/c3")
    assert cg.apply({"memory": {"limit": 100 << 20, "swap": 200 << 20}, "cpu": {"quota": 50000, "period": 100000},
                     "pids": {"limit": 20}, "blockIO": {"weight": 300}}) == []
    p = cg.paths()
    assert read(os.path.join(p["memory"], "memory.limit_in_bytes")) == str(100 << 20)
    assert read(os.path.join(p["memory"], "memory.memsw.limit_in_bytes")) == str(200 << 20)
    assert read(os.path.join(p["cpu"], "cpu.cfs_quota_us")) == "50000"
    assert read(os.path.join(p["pids"], "pids.max")) == "20"
    assert read(os.path.join(p["blkio"], "blkio.weight")) == "300"
    cg.add(4242)
    assert all(read(os.path.join(d, "cgroup.procs")) == "4242" for d in p.values())
    again = drv.open(p)
    assert again.pids() == [4242]
    assert again.stats()["memory_limit"] == 100 << 20 and again.stats()["pids_limit"] == 20


def test_v1_missing_memsw_is_a_warning_not_an_error(v1tree):
    root, proc = v1tree
    drv = V1Driver(str(root), cgroups.read_self_cgroup(str(proc)))
    cg = drv.create("minibox/c4")
    os.unlink(os.path.join(cg.paths()["memory"], "memory.memsw.limit_in_bytes"))
    warnings = cg.apply({"memory": {"limit": 64 << 20, "swap": 128 << 20}})
    assert len(warnings) == 1 and "swap" in warnings[0]
    assert read(os.path.join(cg.paths()["memory"], "memory.limit_in_bytes")) == str(64 << 20)


def test_v1_missing_file_names_it(v1tree):
    root, proc = v1tree
    cg = V1Driver(str(root), cgroups.read_self_cgroup(str(proc))).create("minibox/c5")
    os.unlink(os.path.join(cg.paths()["blkio"], "blkio.weight"))
    with pytest.raises(MiniboxError, match="blkio.weight"):
        cg.apply({"blockIO": {"weight": 300}})


def test_v1_oom_killed_reads_the_counter(v1tree):
    root, proc = v1tree
    cg = V1Driver(str(root), cgroups.read_self_cgroup(str(proc))).create("minibox/c6")
    assert cg.oom_killed() is False
    _touch(os.path.join(cg.paths()["memory"], "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cg.oom_killed() is True


def test_v1_open_refuses_paths_outside_the_hierarchy(v1tree):
    root, proc = v1tree
    drv = V1Driver(str(root), cgroups.read_self_cgroup(str(proc)))
    with pytest.raises(MiniboxError, match="not below"):
        drv.open({"memory": "/etc"})
    with pytest.raises(MiniboxError, match="not below"):
        drv.open({"memory": str(root / "memory" / ".." / "pids" / "x")})


def test_v1_find(v1tree):
    root, proc = v1tree
    drv = V1Driver(str(root), cgroups.read_self_cgroup(str(proc)))
    assert drv.find("minibox/none") is None
    drv.create("minibox/c7")
    assert drv.find("minibox/c7").paths()["memory"].endswith("process_api/me/minibox/c7")


def test_v2_create_enables_controllers_down_the_path(v2tree):
    root, _ = v2tree
    drv = V2Driver(str(root), "/")
    cg = drv.create("minibox/c1")
    assert cg.paths() == {"unified": str(root / "minibox" / "c1")}
    # hugetlb and rdma are not asked for; the rest are enabled at each level above the leaf.
    assert read(root / "cgroup.subtree_control") == "+cpuset +cpu +io +memory +pids"
    assert read(root / "minibox" / "cgroup.subtree_control") == "+cpuset +cpu +io +memory +pids"
    assert read(root / "minibox" / "c1" / "cgroup.subtree_control") == ""


def test_v2_apply_and_stats(v2tree):
    root, _ = v2tree
    cg = V2Driver(str(root), "/").create("minibox/c2")
    assert cg.apply({"memory": {"limit": 100 << 20, "swap": 200 << 20}, "cpu": {"quota": 50000, "period": 100000, "shares": 1024},
                     "pids": {"limit": 20}}) == []
    d = root / "minibox" / "c2"
    assert read(d / "memory.max") == str(100 << 20)
    assert read(d / "memory.swap.max") == str(100 << 20)
    assert read(d / "cpu.max") == "50000 100000"
    assert read(d / "cpu.weight") == "39"
    assert read(d / "pids.max") == "20"
    _touch(d / "cpu.stat", "usage_usec 1500\nuser_usec 1000\n")
    _touch(d / "memory.current", "4096")
    st = cg.stats()
    assert st["cpu_usage_ns"] == 1_500_000 and st["memory_usage"] == 4096 and st["memory_limit"] == 100 << 20


def test_v2_oom_killed_reads_memory_events(v2tree):
    root, _ = v2tree
    cg = V2Driver(str(root), "/").create("minibox/c3")
    _touch(root / "minibox" / "c3" / "memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 0\n")
    assert cg.oom_killed() is False
    _touch(root / "minibox" / "c3" / "memory.events", "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n")
    assert cg.oom_killed() is True


def test_v2_controller_not_enabled_is_explained(v2tree):
    root, _ = v2tree
    cg = V2Driver(str(root), "/").create("minibox/c4")
    os.unlink(root / "minibox" / "c4" / "pids.max")
    with pytest.raises(MiniboxError, match="pids controller is not enabled"):
        cg.apply({"pids": {"limit": 5}})


def test_v2_no_internal_process_rule_is_explained(v2tree, monkeypatch):
    root, _ = v2tree
    (root / "session").mkdir()
    _touch(root / "session" / "cgroup.controllers", "cpu memory pids")
    _touch(root / "session" / "cgroup.subtree_control", "")
    real_write = fs.write

    def kernel_write(path, value):
        # The kernel answers EBUSY when a populated non-root cgroup enables controllers.
        if path == str(root / "session" / "cgroup.subtree_control"):
            raise SyscallError(16, f"write {value!r} to", path)
        real_write(path, value)

    monkeypatch.setattr(fs, "write", kernel_write)
    with pytest.raises(MiniboxError, match="no-internal-process rule.*--cgroup-parent"):
        V2Driver(str(root), "/session").create("minibox/c5")


def test_v2_open_refuses_outside_root(v2tree):
    root, _ = v2tree
    with pytest.raises(MiniboxError):
        V2Driver(str(root), "/").open({"unified": "/etc"})


def test_cgroups_path_default_parent(monkeypatch, v1tree, v2tree):
    monkeypatch.delenv("MINIBOX_CGROUP_PARENT", raising=False)
    assert cgroups.cgroups_path(None, "ab", root=str(v1tree[0])) == "minibox/ab"
    assert cgroups.cgroups_path(None, "ab", root=str(v2tree[0])) == "/minibox/ab"
    assert cgroups.cgroups_path("/docker", "ab") == "/docker/ab"
    monkeypatch.setenv("MINIBOX_CGROUP_PARENT", "/mb")
    assert cgroups.cgroups_path(None, "ab") == "/mb/ab"


def test_v2_a_refused_controller_does_not_block_the_others(v2tree, monkeypatch):
    root, _ = v2tree
    fake_write = fs.write

    def kernel_write(path, value):
        if value == "+cpu":
            raise SyscallError(22, f"write {value!r} to", path)  # EINVAL, as with an RT task below
        fake_write(path, value)

    monkeypatch.setattr(fs, "write", kernel_write)
    cg = V2Driver(str(root), "/").create("minibox/c6")
    assert "+memory" in read(root / "cgroup.subtree_control") and "+cpu " not in read(root / "cgroup.subtree_control") + " "
    cg.apply({"memory": {"limit": 64 << 20}})
    with pytest.raises(MiniboxError, match="cpu controller is not enabled"):
        cg.apply({"cpu": {"quota": 50000, "period": 100000}})
