"""minibox check's report against fake /proc, /sys and cgroup trees."""

import gzip
import os

from minibox import kernelcheck
from minibox.kernelcheck import MISSING, OK, UNKNOWN, Paths


def _w(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _tree(tmp_path, namespaces=("mnt", "pid", "uts", "ipc", "net", "user", "cgroup"), v2=True,
          filesystems="nodev\tcgroup2\nnodev\toverlay\n", config=None):
    proc, sys_, cg = tmp_path / "proc", tmp_path / "sys", tmp_path / "cg"
    for ns in namespaces:
        _w(str(proc / "self" / "ns" / ns))
    _w(str(proc / "filesystems"), filesystems)
    _w(str(proc / "self" / "status"), "Name:\tx\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n")
    _w(str(proc / "sys" / "user" / "max_user_namespaces"), "100\n")
    if v2:
        _w(str(cg / "cgroup.controllers"), "cpuset cpu io memory pids\n")
    else:
        for c in ("memory", "cpu", "pids"):
            _w(str(cg / c / "cgroup.procs"))
    if config is not None:
        with gzip.open(proc / "config.gz", "wt") as f:
            f.write(config)
    (sys_ / "module").mkdir(parents=True)
    return Paths(proc=str(proc), sys=str(sys_), cgroup=str(cg), boot=str(tmp_path / "boot"),
                 modules=str(tmp_path / "lib"), release="6.1.0-test")


def _by_name(items):
    return {i.name: i for i in items}


def test_full_v2_host(tmp_path):
    items = _by_name(kernelcheck.check(_tree(tmp_path, config="CONFIG_VETH=y\nCONFIG_BRIDGE=m\n")))
    assert items["cgroup hierarchy"].detail.startswith("v2")
    assert items["memory controller"].status == OK and items["io controller"].status == OK
    assert items["veth"].status == OK and items["veth"].detail == "built-in"
    # =m with no module tree: cannot say for sure.
    assert items["bridge"].status == UNKNOWN
    assert items["overlay filesystem"].status == OK
    assert items["seccomp filters"].status == OK
    assert "All required kernel features are present." in kernelcheck.render(list(items.values()))


def test_missing_pieces_say_what_they_disable(tmp_path):
    p = _tree(tmp_path, namespaces=("mnt", "pid", "uts", "ipc"), v2=False, filesystems="nodev\tproc\n",
              config="# CONFIG_VETH is not set\n")
    items = kernelcheck.check(p)
    by = _by_name(items)
    assert by["net namespace"].status == MISSING
    assert by["cgroup hierarchy"].detail.startswith("v1")
    assert by["freezer controller"].status == MISSING
    assert by["veth"].status == MISSING
    assert by["overlay filesystem"].status == MISSING
    text = kernelcheck.render(items)
    assert "disables container networking" in text
    assert "Missing required features: overlay filesystem" in text


def test_loadable_module_found_in_modules_dep(tmp_path):
    p = _tree(tmp_path, config="CONFIG_VETH=m\n")
    _w(os.path.join(p.modules, p.release, "modules.dep"), "kernel/drivers/net/veth.ko:\n")
    assert _by_name(kernelcheck.check(p))["veth"].status == OK


def test_no_cgroups_at_all(tmp_path):
    p = _tree(tmp_path, v2=False)
    for c in ("memory", "cpu", "pids"):
        os.unlink(os.path.join(p.cgroup, c, "cgroup.procs"))
    by = _by_name(kernelcheck.check(p))
    assert by["cgroup hierarchy"].status == MISSING
