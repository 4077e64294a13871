"""The rootfs checks of runtime/hygiene.py against crafted trees in tmp_path (no root)."""

import os

import pytest

from minibox.runtime import hygiene
from minibox.runtime.process import InitFailed

TMPFS_RUN = {"destination": "/var/run", "type": "tmpfs", "options": ["nosuid"]}
DEVPTS = {"destination": "/dev/pts", "type": "devpts", "options": ["nosuid"]}


def rootfs(tmp_path, **links):
    root = tmp_path / "rootfs"
    for d in ("proc", "sys", "dev", "etc", "run", "var"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for name, target in links.items():
        path = root / name.replace("__", "/")
        if path.is_dir():
            path.rmdir()
        os.symlink(target, path)
    return str(root)


def test_plain_rootfs_passes(tmp_path):
    hygiene.check_kernel_dirs(rootfs(tmp_path), [DEVPTS, TMPFS_RUN])


@pytest.mark.parametrize("name", ["proc", "sys", "dev"])
def test_kernel_dir_symlink_is_refused(tmp_path, name):
    root = rootfs(tmp_path, **{name: "../../../etc"})
    with pytest.raises(InitFailed, match=f"/{name} is a symlink"):
        hygiene.check_kernel_dirs(root, [])


def test_symlink_below_dev_is_refused_but_not_elsewhere(tmp_path):
    root = rootfs(tmp_path, dev__pts="/etc", var__run="../run")
    with pytest.raises(InitFailed, match="/dev/pts is a symlink"):
        hygiene.check_kernel_dirs(root, [DEVPTS])
    # /var/run -> /run is normal in Debian images; secure_join keeps a tmpfs there inside.
    hygiene.check_kernel_dirs(root, [TMPFS_RUN])


def test_kernel_dir_that_is_a_file_is_refused(tmp_path):
    root = rootfs(tmp_path)
    os.rmdir(os.path.join(root, "sys"))
    open(os.path.join(root, "sys"), "w").close()
    with pytest.raises(InitFailed, match="not a directory"):
        hygiene.check_kernel_dirs(root, [])


def test_relative_workdir_is_refused():
    with pytest.raises(InitFailed, match="absolute path"):
        hygiene.enter_cwd("relative/dir")
