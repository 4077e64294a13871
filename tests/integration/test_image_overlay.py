"""Real overlayfs over store layers: whiteouts, opaque dirs, sharing, 100+ layers.

Needs root (mknod of whiteouts, trusted.* xattrs, mount) and overlayfs.
"""

import io
import json
import os
import stat
import subprocess

import pytest

from minibox.image.overlay import mount_overlay, unmount_overlay
from minibox.image.store import ImageStore
from minibox.image.unpack import OPAQUE_XATTR, unpack
from imgreg import tar_layer as layer  # one layer-tar builder for the image tests

ROOTFS_BUILD = os.path.join(os.path.dirname(__file__), "..", "..", "rootfs", "build.sh")


def _overlay_available():
    if os.geteuid() != 0:
        return "needs root (mknod, trusted xattrs, mount)"
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            return "overlayfs not in /proc/filesystems"
    return None


pytestmark = [pytest.mark.root, pytest.mark.skipif(bool(_overlay_available()), reason=_overlay_available() or "")]


def make_image(store, layers, tag):
    infos = [store.add_layer(io.BytesIO(raw)) for raw in layers]
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": [i["diff_id"] for i in infos]}}
    return store.add_image(json.dumps(config).encode(), [{"diff_id": i["diff_id"]} for i in infos], [tag])


@pytest.fixture
def mounts(tmp_path):
    """Creates container dirs on demand; unmounts everything at teardown."""
    made = []

    def container(name):
        base = tmp_path / "containers" / name
        for d in ("diff", "work", "merged"):
            (base / d).mkdir(parents=True)
        made.append(str(base / "merged"))
        return str(base / "diff"), str(base / "work"), str(base / "merged")

    yield container
    for m in made:
        unmount_overlay(m)


def test_whiteout_and_opaque_nodes(tmp_path):
    dest = tmp_path / "l"
    dest.mkdir()
    raw = layer(("dir", "d", b""), ("dir/.wh..wh..opq", "f", b""), ("dir/new", "f", b"n"),
                (".wh.gone", "f", b""), ("keep", "f", b"k"), (".wh.keep", "f", b""))
    unpack(io.BytesIO(raw), str(dest))
    st = os.lstat(dest / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert os.getxattr(dest / "dir", OPAQUE_XATTR) == b"y"
    assert (dest / "keep").read_bytes() == b"k"  # a same-layer entry wins over its whiteout
    assert not os.path.exists(dest / ".wh.gone") and not os.path.exists(dest / "dir/.wh..wh..opq")


def test_merged_view_honours_deletions(tmp_path, mounts):
    store = ImageStore(str(tmp_path / "root"))
    base = layer(("gone", "f", b"g"), ("dir", "d", b""), ("dir/old", "f", b"o"), ("stay", "f", b"s"),
                 ("sub", "d", b""), ("sub/a", "f", b"a"), ("sub/b", "f", b"b"))
    top = layer((".wh.gone", "f", b""), ("dir", "d", b""), ("dir/.wh..wh..opq", "f", b""),
                ("dir/new", "f", b"n"), ("sub/.wh.a", "f", b""))
    img = make_image(store, [base, top], "test/multi:1")
    upper, work, merged = mounts("c1")
    mount_overlay(store, img, upper, work, merged)
    assert sorted(os.listdir(merged)) == ["dir", "stay", "sub"]
    assert os.listdir(os.path.join(merged, "dir")) == ["new"]
    assert os.listdir(os.path.join(merged, "sub")) == ["b"]


def test_busybox_import_two_containers_share_lowers(tmp_path, mounts):
    tar = tmp_path / "busybox.tar"
    r = subprocess.run(["sh", ROOTFS_BUILD, str(tar)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot build the busybox rootfs: {r.stderr.strip()}")
    store = ImageStore(str(tmp_path / "root"))
    img = store.import_tarball(str(tar), "busybox:latest", ['CMD ["sh"]'])
    assert store.resolve("busybox").config["config"]["Cmd"] == ["sh"]
    a = mounts("a")
    b = mounts("b")
    mount_overlay(store, img, *a)
    mount_overlay(store, img, *b)
    for _, _, merged in (a, b):
        assert os.access(os.path.join(merged, "bin/busybox"), os.X_OK)
        assert stat.S_IMODE(os.stat(os.path.join(merged, "tmp")).st_mode) == 0o1777
    with open("/proc/self/mountinfo") as f:
        lines = [l for l in f if a[2] in l or b[2] in l]
    lowers = {opt for l in lines for opt in l.split()[-1].split(",") if opt.startswith("lowerdir=")}
    assert len(lines) == 2 and len(lowers) == 1, "both containers must stack the same layer dirs"
    with open(os.path.join(a[2], "etc/only-a"), "w") as f:
        f.write("a")
    assert not os.path.exists(os.path.join(b[2], "etc/only-a"))
    assert os.path.exists(os.path.join(a[0], "etc/only-a"))
    assert not os.path.exists(os.path.join(img.layer_dirs()[0], "etc/only-a"))
    unmount_overlay(a[2])
    unmount_overlay(a[2])  # idempotent
    assert not os.path.exists(os.path.join(a[2], "bin"))


def test_128_layers_fit_the_page(tmp_path, mounts):
    store = ImageStore(str(tmp_path / "root"))
    layers = [layer((f"f{i:03d}", "f", str(i).encode())) for i in range(128)]
    img = make_image(store, layers, "tall:1")
    assert len(img.diff_ids) == 128
    upper, work, merged = mounts("tall")
    mount_overlay(store, img, upper, work, merged)
    assert len(os.listdir(merged)) == 128
    with open(os.path.join(merged, "f127")) as f:
        assert f.read() == "127"
