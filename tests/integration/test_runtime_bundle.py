"""The runtime alone runs an OCI bundle, and runc runs the very same bundle the same way."""

import json
import os
import shutil
import subprocess
import tarfile
import uuid

import pytest

from conftest import BUSYBOX_TAR, Minibox, requires

pytestmark = requires("root", "busybox")


@pytest.fixture
def bundle(tmp_path):
    """A runtime-spec bundle: docker's default spec around the busybox rootfs."""
    from minibox.runtime import spec as ocispec

    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    with tarfile.open(BUSYBOX_TAR) as tar:
        # Our own trusted rootfs; the data filter still refuses anything odd.
        tar.extractall(rootfs, filter="fully_trusted")
    spec = ocispec.default_spec()
    spec["process"]["rlimits"] = []  # runc cannot raise RLIMIT_NOFILE on hosts without CAP_SYS_RESOURCE
    spec["hostname"] = "bundled"
    (tmp_path / "config.json").write_text(json.dumps(spec))
    return tmp_path


def _set_args(bundle, args, cgroup=None):
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = args
    if cgroup:
        cfg["linux"]["cgroupsPath"] = cgroup
    (bundle / "config.json").write_text(json.dumps(cfg))


def test_runtime_runs_a_bundle_with_its_exit_code(bundle, tmp_path):
    mb = Minibox(str(tmp_path / "state"))
    cid = f"rt-{uuid.uuid4().hex[:8]}"
    _set_args(bundle, ["sh", "-c", "hostname; ps -o pid,comm | wc -l; exit 7"], cgroup=f"minibox/{cid}")
    r = mb("runtime", "run", "-b", str(bundle), cid)
    assert r.returncode == 7, r.stderr
    assert r.stdout.split() == ["bundled", "4"]  # header, sh, ps, wc: nothing from the host
    assert mb("runtime", "list").stdout.strip().splitlines() == ["ID\tPID\tSTATUS\tBUNDLE"]
    assert not any(cid in d for _, dirs, _ in os.walk("/sys/fs/cgroup/pids") for d in dirs)


def test_runtime_reports_a_missing_command(bundle, tmp_path):
    _set_args(bundle, ["/no/such/binary"])
    r = Minibox(str(tmp_path / "state"))("runtime", "run", "-b", str(bundle), "missing")
    assert r.returncode == 127
    assert r.stderr.strip() == "minibox: exec /no/such/binary: no such file or directory"


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed (apt-get install runc)")
def test_runc_runs_the_same_bundle_the_same_way(bundle, tmp_path):
    _set_args(bundle, ["sh", "-c", "hostname; cat /proc/self/status | grep CapEff; ls /dev | wc -l"])
    ours = Minibox(str(tmp_path / "state"))("runtime", "run", "-b", str(bundle), "same")
    theirs = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "-b", str(bundle), "same"],
                            capture_output=True, text=True, timeout=60)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
