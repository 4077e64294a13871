"""--userns-remap: root in the container, an unprivileged uid range on the host.

Each test remaps to a subordinate-id name of its own (``mbt<hex>``), which
minibox appends to /etc/subuid and /etc/subgid; the fixture removes those
lines again. A fresh minibox root is used, because remapping opens the
root's dirs for traversal (0711, as dockerd does).
"""

import json
import os
import shutil
import tempfile
import uuid

import pytest
from conftest import requires

from minibox.runtime import userns



def _why_no_userns() -> str | None:
    """Root may still be refused a user namespace: in a chroot (the VM harness runs the
    tests chrooted), or where the admin turned them off."""
    if os.geteuid() != 0:
        return "needs root"
    from minibox import syscalls as sc

    pid = os.fork()
    if pid == 0:
        try:
            sc.unshare(sc.CLONE_NEWUSER)
            os._exit(0)
        except BaseException:  # noqa: BLE001 - the exit code is the answer
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return "unshare(CLONE_NEWUSER) is refused here (running chrooted, or user namespaces disabled)"
    return None


_NO_USERNS = _why_no_userns()
pytestmark = [requires("overlay", "busybox", "userns"),
              pytest.mark.skipif(_NO_USERNS is not None, reason=str(_NO_USERNS))]


def _drop_name(path: str, name: str) -> None:
    try:
        with open(path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return
    keep = [line for line in lines if not line.startswith(name + ":")]
    if keep != lines:
        from minibox.atomic import write_bytes

        write_bytes(path, "".join(keep).encode(), mode=0o644)


@pytest.fixture
def remap_name():
    name = f"mbt{uuid.uuid4().hex[:8]}"
    yield name
    for path in (userns.SUBUID, userns.SUBGID):
        _drop_name(path, name)


def _range(path: str, name: str) -> tuple[int, int]:
    with open(path) as f:
        for n, start, count in userns.parse_subid(f.read()):
            if n == name:
                return start, count
    raise AssertionError(f"no {name} entry in {path}")


def test_root_inside_is_the_subuid_range_outside(fresh_mb, remap_name):
    mb = fresh_mb
    cid = mb("run", "-d", "--network", "none", "--userns-remap", remap_name, "busybox", "sleep", "60",
             check=True).stdout.strip()
    try:
        uid0, size = _range(userns.SUBUID, remap_name)
        gid0, _ = _range(userns.SUBGID, remap_name)
        assert uid0 >= userns.FIRST_ID and size == userns.RANGE_SIZE
        r = mb("exec", cid, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split("\n")
        assert lines[0] == "0" and lines[1] == "0"
        assert lines[2].split() == ["0", str(uid0), str(size)]
        pid = json.loads(mb("inspect", cid).stdout)[0]["State"]["Pid"]
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        assert status["Uid"].split() == [str(uid0)] * 4
        assert status["Gid"].split() == [str(gid0)] * 4
    finally:
        mb("rm", "-f", cid)


def test_file_created_in_a_bind_mount_belongs_to_the_mapped_uid(fresh_mb, remap_name):
    mb = fresh_mb
    host_dir = tempfile.mkdtemp(prefix="mb-userns-", dir="/var/tmp")
    try:
        os.chmod(host_dir, 0o777)
        r = mb("run", "--rm", "--network", "none", "--userns-remap", remap_name, "-v", f"{host_dir}:/data",
               "busybox", "sh", "-c", "touch /data/made-inside && ls -ln /data/made-inside")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[2:4] == ["0", "0"]  # root's, seen from inside
        st = os.stat(os.path.join(host_dir, "made-inside"))
        assert (st.st_uid, st.st_gid) == (_range(userns.SUBUID, remap_name)[0],
                                          _range(userns.SUBGID, remap_name)[0])
    finally:
        shutil.rmtree(host_dir)


@pytest.mark.parametrize("shift", ["idmap", "copy"])
def test_image_files_appear_owned_by_root_and_stay_unprivileged(fresh_mb, remap_name, shift):
    """Idmapped layers (the kernel's way, 5.19+) and the shifted-copy fallback give the same view."""
    mb = fresh_mb
    env = dict(os.environ, MINIBOX_USERNS_SHIFT=shift)
    r = mb("run", "--rm", "--network", "none", "--userns-remap", remap_name, "busybox", "sh", "-c",
           "ls -ln /bin/busybox /etc/passwd; echo '#' >> /etc/passwd && echo WROTE; "
           "cat /proc/sys/kernel/hostname; echo 1 > /proc/sys/kernel/sysrq || echo DENIED", env=env)
    assert r.returncode == 0, r.stderr
    owners = [line.split()[2:4] for line in r.stdout.splitlines()[:2]]
    assert owners == [["0", "0"], ["0", "0"]], r.stdout
    assert "WROTE" in r.stdout and "DENIED" in r.stdout
    cache = os.path.join(mb.root, "image", "userns")
    if shift == "copy":  # (a kernel without idmapped layers falls back to copies for "idmap" too)
        assert os.path.isdir(cache) and os.listdir(cache)


def test_shifted_copies_go_with_their_layer(fresh_mb, remap_name):
    """rmi of the last image using a layer also removes that layer's --userns-remap copies."""
    mb = fresh_mb
    env = dict(os.environ, MINIBOX_USERNS_SHIFT="copy")
    tag = f"mbt-shift-{uuid.uuid4().hex[:8]}:1"
    r = mb("run", "--name", "src", "--network", "none", "busybox", "sh", "-c", "echo one > /only-here")
    assert r.returncode == 0, r.stderr
    assert mb("commit", "src", tag).returncode == 0
    assert mb("rm", "src").returncode == 0
    r = mb("run", "--rm", "--network", "none", "--userns-remap", remap_name, tag, "cat", "/only-here", env=env)
    assert r.returncode == 0 and r.stdout == "one\n", r.stderr
    cache = os.path.join(mb.root, "image", "userns")
    before = set(os.listdir(cache))
    assert len(before) == 2  # busybox's layer and the committed one
    r = mb("rmi", tag)
    assert r.returncode == 0, r.stderr
    after = set(os.listdir(cache))
    assert len(after) == 1 and after < before  # busybox:latest still uses its layer's copy
    assert not [n for n in os.listdir(os.path.join(mb.root, "image", "tmp")) if "userns" in n]


def test_userns_host_opts_out(fresh_mb, remap_name):
    env = dict(os.environ, MINIBOX_USERNS_REMAP=remap_name)
    r = fresh_mb("run", "--rm", "--network", "none", "busybox", "cat", "/proc/self/uid_map", env=env)
    assert r.returncode == 0 and r.stdout.split()[1] != "0", (r.stdout, r.stderr)
    r = fresh_mb("run", "--rm", "--network", "none", "--userns", "host", "busybox", "cat",
                 "/proc/self/uid_map", env=env)
    assert r.returncode == 0 and r.stdout.split() == ["0", "0", "4294967295"], (r.stdout, r.stderr)


def test_privileged_needs_userns_host(fresh_mb, remap_name):
    r = fresh_mb("run", "--rm", "--network", "none", "--userns-remap", remap_name, "--privileged",
                 "busybox", "true")
    assert r.returncode == 125 and "--userns=host" in r.stderr


def test_named_volume_is_the_mapped_roots(fresh_mb, remap_name):
    mb = fresh_mb
    vol = f"mbt-vol-{uuid.uuid4().hex[:8]}"
    r = mb("run", "--rm", "--network", "none", "--userns-remap", remap_name, "-v", f"{vol}:/data", "busybox",
           "sh", "-c", "touch /data/made-inside && ls -ln /data")
    try:
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[-7:-5] == ["0", "0"], r.stdout
        data = os.path.join(mb.root, "volumes", vol, "_data")
        st = os.stat(os.path.join(data, "made-inside"))
        assert st.st_uid == _range(userns.SUBUID, remap_name)[0]
    finally:
        mb("volume", "rm", vol)
