"""The image store on a temp root: import, resolve, tags, sharing, atomicity."""

import io
import json
import os
import stat
import tarfile

import pytest

from minibox import cli
from minibox.errors import NotFound, UsageError
from minibox.image.store import ImageStore
from minibox.image.unpack import LayerError


def rootfs_tar(path, extra=b"", hostile=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in (("bin/sh", b"#!fake\n"), ("etc/hostname", b"box\n" + extra)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o755
            tf.addfile(ti, io.BytesIO(data))
        if hostile:
            ti = tarfile.TarInfo("../../escape")
            tf.addfile(ti, io.BytesIO(b""))
    path.write_bytes(buf.getvalue())
    return str(path)


def state(root):
    """Every path under the store with its content hash (to prove 'unchanged')."""
    import hashlib

    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    out[p] = hashlib.sha256(f.read()).hexdigest()
            else:
                out[p] = None
    return out


def test_import_resolve_and_layout(tmp_path):
    root = tmp_path / "root"
    store = ImageStore(str(root))
    img = store.import_tarball(rootfs_tar(tmp_path / "r.tar"), "busybox:latest", ['CMD ["sh"]'])
    assert img.id.startswith("sha256:") and len(img.id) == 71
    assert img.repo_tags == ["busybox:latest"]
    assert img.config["config"]["Cmd"] == ["sh"]
    assert img.config["rootfs"]["type"] == "layers" and len(img.diff_ids) == 1
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox", img.id, img.short_id, img.id[7:15]):
        assert store.resolve(ref).id == img.id
    assert (root / "image").stat().st_mode & 0o777 == 0o700
    for sub in ("configs", "meta", "layers", "l", "blobs/sha256", "tmp"):
        assert stat.S_IMODE((root / "image" / sub).stat().st_mode) == 0o700
    (diff,) = img.layer_dirs()
    with open(os.path.join(diff, "etc/hostname"), "rb") as f:
        assert f.read() == b"box\n"
    (link,) = store.lower_links(img)
    assert link.startswith("l/") and len(link) == 12
    assert os.path.realpath(os.path.join(store.dir, link)) == os.path.realpath(diff)
    assert os.listdir(root / "image" / "tmp") == []
    assert img.meta["layers"][0]["blob"].startswith("sha256:")
    assert store.has_blob(img.meta["layers"][0]["blob"])


def test_import_without_changes_has_empty_cmd(tmp_path):
    img = ImageStore(str(tmp_path / "root")).import_tarball(rootfs_tar(tmp_path / "r.tar"), None)
    assert img.config["config"]["Cmd"] is None and img.repo_tags == []


def test_two_images_share_one_layer_dir(tmp_path):
    store = ImageStore(str(tmp_path / "root"))
    tar = rootfs_tar(tmp_path / "r.tar")
    a = store.import_tarball(tar, "a:1", ['CMD ["a"]'])
    b = store.import_tarball(tar, "b:1", ['CMD ["b"]'])
    assert a.id != b.id
    assert a.layer_dirs() == b.layer_dirs()
    assert len(os.listdir(tmp_path / "root/image/layers")) == 1
    du = store.disk_usage()
    assert du["images"] == 2 and du["layers"] == 1
    assert du["shared_size"] == du["layers_size"] > 0
    assert du["images_size_sum"] == 2 * du["layers_size"]


def test_failed_import_leaves_store_unchanged(tmp_path):
    store = ImageStore(str(tmp_path / "root"))
    store.import_tarball(rootfs_tar(tmp_path / "ok.tar"), "ok:1")
    before = state(tmp_path / "root")
    with pytest.raises(LayerError, match="escape"):
        store.import_tarball(rootfs_tar(tmp_path / "bad.tar", extra=b"new", hostile=True), "bad:1")
    assert state(tmp_path / "root") == before
    assert not (tmp_path / "escape").exists()


def test_resolve_errors(tmp_path):
    store = ImageStore(str(tmp_path / "root"))
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        store.resolve("nope")
    with pytest.raises(UsageError, match="invalid reference format"):
        store.resolve("Bad Name")


def test_tag_and_untag(tmp_path):
    store = ImageStore(str(tmp_path / "root"))
    img = store.import_tarball(rootfs_tar(tmp_path / "r.tar"), "a:1")
    store.tag(img, "me/b:2")
    assert store.resolve("me/b:2").id == img.id
    assert store.get(img.id).repo_tags == ["a:1", "me/b:2"]
    assert store.untag("a:1") == img.id
    assert store.get(img.id).repo_tags == ["me/b:2"]
    with open(tmp_path / "root/image/repositories.json") as f:
        data = json.load(f)
    assert data == {"Repositories": {"me/b": {"me/b:2": img.id}}}


def test_reap_tmp_removes_dead_owners_only(tmp_path):
    store = ImageStore(str(tmp_path / "root"))
    store.ensure()
    dead = tmp_path / "root/image/tmp/layer-999999999-abc"
    (dead / "diff").mkdir(parents=True)
    mine = store.mkdtemp("layer")
    store.reap_tmp()
    assert not dead.exists() and os.path.isdir(mine)


def test_cli_import_and_images(tmp_path, capsys):
    root = str(tmp_path / "root")
    tar = rootfs_tar(tmp_path / "r.tar")
    assert cli.main(["--root", root, "import", "-c", 'CMD ["sh"]', "-m", "hello", tar, "busybox:latest"]) == 0
    image_id = capsys.readouterr().out.strip()
    assert image_id.startswith("sha256:")
    assert cli.main(["--root", root, "images"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:3] == ["busybox", "latest", image_id[7:19]]
    assert lines[1].endswith("B")
    assert cli.main(["--root", root, "images", "-q"]) == 0
    assert capsys.readouterr().out == image_id[7:19] + "\n"
    assert cli.main(["--root", root, "images", "-q", "nothere"]) == 0
    assert capsys.readouterr().out == ""
    assert cli.main(["--root", root, "import", tar, "Bad:Ref"]) == 125
    assert "invalid reference format" in capsys.readouterr().err
    assert cli.main(["--root", root, "import", str(tmp_path / "missing.tar")]) == 125
    assert "missing.tar" in capsys.readouterr().err


def test_blob_digest_and_size_mismatch_change_nothing(tmp_path):
    import gzip
    import hashlib

    store = ImageStore(str(tmp_path / "root"))
    store.ensure()
    before = state(tmp_path / "root")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        ti = tarfile.TarInfo("f")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"abc"))
    blob = gzip.compress(raw.getvalue())
    good = "sha256:" + hashlib.sha256(blob).hexdigest()
    with pytest.raises(LayerError, match="digest mismatch"):
        store.add_layer_blob(io.BytesIO(blob), blob_digest="sha256:" + "1" * 64, label="L")
    with pytest.raises(LayerError, match="size mismatch"):
        store.add_layer_blob(io.BytesIO(blob), blob_digest=good, blob_size=len(blob) + 1, label="L")
    assert state(tmp_path / "root") == before
    info = store.add_layer_blob(io.BytesIO(blob), blob_digest=good, blob_size=len(blob), label="L")
    assert info["blob"] == good and info["media_type"].endswith("+gzip") and store.has_blob(good)
    assert info["tar_size"] == len(raw.getvalue())


def test_reap_tmp_removes_stale_files_too(tmp_path):
    store = ImageStore(str(tmp_path / "root"))
    store.ensure()
    stale = tmp_path / "root/image/tmp/layer-999999999-abc.blob"
    stale.write_bytes(b"partial")
    store.reap_tmp()
    assert not stale.exists()


def test_import_is_reproducible_with_source_date_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    tar = rootfs_tar(tmp_path / "r.tar")
    a = ImageStore(str(tmp_path / "a")).import_tarball(tar, "x:1", ['CMD ["sh"]'])
    other = tmp_path / "elsewhere"
    other.mkdir()
    b = ImageStore(str(tmp_path / "b")).import_tarball(rootfs_tar(other / "copy.tar"), "x:1", ['CMD ["sh"]'])
    assert a.id == b.id and a.created == "1970-01-01T00:00:00Z"
    assert a.config["comment"] == "Imported from -"
    view = ImageStore(str(tmp_path / "a")).inspect(a)
    assert view["Id"] == a.id and view["RootFS"]["Layers"] == a.diff_ids and "Variant" not in view
