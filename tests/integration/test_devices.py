"""Device access from a real container: the devices cgroup (v1) or the eBPF filter (v2).

The device read is a loop device bound to a temp file holding a secret, so
the test shows a real host disk being read (or not) through a node the
container made with mknod (CAP_MKNOD is in docker's default set, so only
the cgroup stands in the way). Runs on the host (v1) and in the VM (v2):
``python -m tests.vm.run -q tests/integration/test_devices.py``.
"""

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
from conftest import requires

SECRET = "MINIBOX-DEVICE-SECRET"


@pytest.fixture
def loop_device():
    """(path, major, minor) of a loop device over a file that starts with SECRET."""
    if shutil.which("losetup") is None:
        pytest.skip("losetup is not installed")
    fd, backing = tempfile.mkstemp(prefix="mb-devtest-", dir="/var/tmp")
    os.write(fd, SECRET.encode() + b"\n" + b"\0" * 65536)
    os.close(fd)
    r = subprocess.run(["losetup", "-f", "--show", backing], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        os.unlink(backing)
        pytest.skip(f"no loop device: {r.stderr.strip()}")
    dev = r.stdout.strip()
    try:
        st = os.stat(dev)
        with open(dev, "rb") as f:
            assert f.read(len(SECRET)) == SECRET.encode(), "the host itself cannot read the loop device"
        yield dev, os.major(st.st_rdev), os.minor(st.st_rdev)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
        os.unlink(backing)


def read_via_mknod(mb, major, minor, *flags):
    script = f"mknod /dev/sdx b {major} {minor} && head -c {len(SECRET)} /dev/sdx"
    return mb("run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c", script)


@requires("overlay", "busybox")
def test_block_device_made_with_mknod_cannot_be_read(mb, loop_device):
    _dev, major, minor = loop_device
    r = read_via_mknod(mb, major, minor)
    assert SECRET not in r.stdout
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, r.stderr


@requires("overlay", "busybox")
def test_privileged_reads_it(mb, loop_device):
    _dev, major, minor = loop_device
    r = read_via_mknod(mb, major, minor, "--privileged")
    assert r.returncode == 0 and r.stdout == SECRET, r.stderr


@requires("overlay", "busybox")
def test_device_flag_allows_just_that_device_and_access(mb, loop_device):
    dev, _major, _minor = loop_device
    r = mb("run", "--rm", "--network", "none", "--device", f"{dev}:/dev/disk0:r", "busybox", "sh", "-c",
           f"head -c {len(SECRET)} /dev/disk0 && echo && echo x > /dev/disk0")
    assert r.stdout.startswith(SECRET), r.stderr
    assert r.returncode != 0 and "Operation not permitted" in r.stderr


@requires("overlay", "busybox")
def test_standard_devices_still_work(mb):
    r = mb("run", "--rm", "--network", "none", "busybox", "sh", "-c",
           "echo x > /dev/null && head -c 4 /dev/urandom | wc -c && head -c 3 /dev/zero | wc -c")
    assert r.returncode == 0 and r.stdout.split() == ["4", "3"], r.stderr


def _v2_driver():
    from minibox.cgroups import open_driver

    try:
        drv = open_driver()
    except Exception as exc:  # noqa: BLE001 - any failure means "no cgroups here"
        pytest.skip(f"no cgroup driver: {exc}")
    if drv.version != 2:
        pytest.skip("cgroup v1 host: the eBPF device filter is a v2 feature (run in tests/vm)")
    return drv


@requires("root")
def test_ebpf_filter_attached_to_a_v2_cgroup_denies_and_allows():
    """The kernel loads our generated program and enforces it on a process in the cgroup.

    The probe is /dev/kmsg (c 1:11): root can open it, docker's list does not allow it.
    """
    _v2_driver()
    from minibox.cgroups import ebpf
    from minibox.cgroups.devices import DENY_ALL

    dev = "/dev/kmsg"
    try:
        os.close(os.open(dev, os.O_RDONLY))
    except OSError as exc:
        pytest.skip(f"cannot open {dev} even outside the cgroup: {exc}")
    with open("/proc/self/cgroup") as f:
        own = f.read().split("::", 1)[1].strip()
    path = os.path.join("/sys/fs/cgroup", own.lstrip("/"), f"mb-devtest-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    try:
        ebpf.attach(path, [DENY_ALL])
        # Attaching again (docker update) replaces the program rather than stacking it.
        ebpf.attach(path, [DENY_ALL])
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert len(ebpf.attached(fd, path)) == 1
        finally:
            os.close(fd)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
                with open("/dev/null", "wb") as f:
                    f.write(b"x")
                code = 1
                os.open(dev, os.O_RDONLY)
                code = 2
            except PermissionError:
                code = 0 if code == 1 else 3
            except BaseException:  # noqa: BLE001 - the child must exit with a code
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, {
            1: "?", 2: "the loop device opened despite the filter", 3: "/dev/null was denied",
            4: "the child failed"}.get(os.waitstatus_to_exitcode(status))
    finally:
        os.rmdir(path)
