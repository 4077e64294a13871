"""save/load round trips, hostile archives, rmi and prune on a temp store."""

import hashlib
import io
import json
import os
import tarfile

import pytest

from minibox.errors import Conflict, MiniboxError, NotFound
from minibox.image import archive
from minibox.image.store import ImageStore
from minibox.image.unpack import LayerError


def layer_tar(*files) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def docker_archive(path, layers, tags=("x/y:1",), diff_ids=None):
    """A docker-save style archive (classic <id>/layer.tar layout) written by hand."""
    diff_ids = diff_ids or ["sha256:" + hashlib.sha256(raw).hexdigest() for raw in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"step {i}"} for i in range(len(layers))]}).encode()
    cid = hashlib.sha256(config).hexdigest()
    with tarfile.open(path, "w") as tf:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        names = []
        for i, raw in enumerate(layers):
            add(f"l{i}/layer.tar", raw)
            names.append(f"l{i}/layer.tar")
        add(f"{cid}.json", config)
        add("manifest.json", json.dumps([{"Config": f"{cid}.json", "RepoTags": list(tags), "Layers": names}]).encode())
    return "sha256:" + cid


def snapshot(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            if n in ("lock", "gc.lock"):
                continue
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    out[p] = hashlib.sha256(f.read()).hexdigest()
            else:
                out[p] = None
    return out


@pytest.fixture
def two_layer(tmp_path):
    base = layer_tar(("bin/sh", b"#!"), ("etc/a", b"a"))
    top = layer_tar(("etc/b", b"b"))
    path = str(tmp_path / "in.tar")
    image_id = docker_archive(path, [base, top], tags=("x/y:1", "x/y:2"))
    return path, image_id


def test_load_docker_archive_then_save_and_reload(tmp_path, two_layer):
    path, image_id = two_layer
    a = ImageStore(str(tmp_path / "a"))
    (img,) = archive.load(a, path, quiet=True)
    assert img.id == image_id and img.repo_tags == ["x/y:1", "x/y:2"]
    assert len(img.layer_dirs()) == 2
    out = str(tmp_path / "saved.tar")
    archive.save(a, ["x/y:1", "x/y:2"], out)
    with tarfile.open(out) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))
        index = json.load(tf.extractfile("index.json"))
    assert "oci-layout" in names and manifest[0]["RepoTags"] == ["x/y:1", "x/y:2"]
    assert len(manifest) == 1 and len(index["manifests"]) == 2
    b = ImageStore(str(tmp_path / "b"))
    (again,) = archive.load(b, out, quiet=True)
    assert again.id == img.id and again.diff_ids == img.diff_ids
    assert again.repo_tags == ["x/y:1", "x/y:2"]
    # The same archive read as an OCI layout (index.json only) gives the same image.
    c = ImageStore(str(tmp_path / "c"))
    layout = tmp_path / "layout"
    with tarfile.open(out) as tf:
        for m in tf.getmembers():
            if m.name != "manifest.json" and m.isfile():
                dest = layout / m.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tf.extractfile(m).read())
    (oci,) = archive.load(c, str(layout), quiet=True)
    assert oci.id == img.id and oci.repo_tags == ["x/y:1", "x/y:2"]


def test_load_gzip_archive(tmp_path, two_layer):
    import gzip

    path, image_id = two_layer
    gz = tmp_path / "in.tar.gz"
    with open(path, "rb") as f:
        gz.write_bytes(gzip.compress(f.read()))
    store = ImageStore(str(tmp_path / "a"))
    (img,) = archive.load(store, str(gz), quiet=True)
    assert img.id == image_id
    assert os.listdir(store.path("tmp")) == []


def test_hostile_layer_in_archive_changes_nothing(tmp_path, two_layer):
    path, _ = two_layer
    store = ImageStore(str(tmp_path / "a"))
    archive.load(store, path, quiet=True)
    before = snapshot(store.dir)
    bad = str(tmp_path / "bad.tar")
    docker_archive(bad, [layer_tar(("ok", b"1"), ("../../escape", b"x"))], tags=("bad:1",))
    with pytest.raises(LayerError, match="escapes the layer"):
        archive.load(store, bad, quiet=True)
    assert snapshot(store.dir) == before
    assert not (tmp_path / "escape").exists()


def test_diff_id_mismatch_changes_nothing(tmp_path):
    store = ImageStore(str(tmp_path / "a"))
    store.ensure()
    before = snapshot(store.dir)
    bad = str(tmp_path / "bad.tar")
    docker_archive(bad, [layer_tar(("f", b"1"))], diff_ids=["sha256:" + "0" * 64])
    with pytest.raises(LayerError, match="diff_id mismatch"):
        archive.load(store, bad, quiet=True)
    assert snapshot(store.dir) == before


def test_not_an_archive(tmp_path):
    p = tmp_path / "junk.tar"
    p.write_bytes(layer_tar(("hello", b"x")))
    with pytest.raises(MiniboxError, match="neither a docker save archive"):
        archive.load(ImageStore(str(tmp_path / "a")), str(p), quiet=True)


def fake_container(store, image_id):
    cid = os.urandom(32).hex()
    d = os.path.join(store.root, "containers", cid)
    os.makedirs(d)
    with open(os.path.join(d, "container.json"), "w") as f:
        json.dump({"id": cid, "image_id": image_id}, f)
    return cid


def test_rmi_refuses_an_image_in_use(tmp_path, two_layer):
    path, image_id = two_layer
    store = ImageStore(str(tmp_path / "a"))
    archive.load(store, path, quiet=True)
    fake_container(store, image_id)
    assert store.remove("x/y:2") == ["Untagged: x/y:2"]  # another tag remains
    with pytest.raises(Conflict, match="is using its referenced image"):
        store.remove("x/y:1")
    with pytest.raises(Conflict, match="being used by container"):
        store.remove(image_id)
    assert store.remove("x/y:1", force=True) == ["Untagged: x/y:1"]
    img = store.resolve(image_id)  # untagged, but still there for the container
    assert all(os.path.isdir(d) for d in img.layer_dirs())


def test_rmi_deletes_unshared_layers_only(tmp_path, two_layer):
    path, image_id = two_layer
    store = ImageStore(str(tmp_path / "a"))
    (_img,) = archive.load(store, path, quiet=True)
    base_only = str(tmp_path / "base.tar")
    other = docker_archive(base_only, [layer_tar(("bin/sh", b"#!"), ("etc/a", b"a"))], tags=("base:1",))
    store.remove("x/y:2")
    lines = store.remove("x/y:1")
    assert lines[:2] == ["Untagged: x/y:1", f"Deleted: {image_id}"]
    assert len([line for line in lines if line.startswith("Deleted: sha256:")]) == 3
    archive.load(store, base_only, quiet=True)
    assert store.resolve("base:1").id == other
    with pytest.raises(NotFound):
        store.resolve("x/y:1")
    assert len(os.listdir(store.path("layers"))) == 1 and len(os.listdir(store.path("l"))) == 1


def test_prune_dangling_and_all(tmp_path, two_layer):
    path, image_id = two_layer
    store = ImageStore(str(tmp_path / "a"))
    archive.load(store, path, quiet=True)
    store.untag("x/y:1")
    lines, _ = store.prune()
    assert lines == []  # still tagged x/y:2
    store.untag("x/y:2")
    lines, reclaimed = store.prune()
    assert f"deleted: {image_id}" in lines and reclaimed > 0
    assert os.listdir(store.path("layers")) == [] and os.listdir(store.path("blobs/sha256")) == []
    archive.load(store, path, quiet=True)
    fake_container(store, image_id)
    lines, _ = store.prune(all_images=True)
    assert lines == [] and store.resolve("x/y:1").id == image_id


def _image_verb(root, *argv):
    """Dispatch ``minibox image ...`` as cli.main would once "image" is in its verb list."""
    from minibox import cli
    from minibox.commands import image as image_cmd

    parser = cli.Parser(prog="minibox image")
    image_cmd.configure(parser)
    args = parser.parse_args(list(argv))
    args.root, args.debug = root, False
    return image_cmd.main(args)


def test_image_verb_ls_prune_inspect(tmp_path, two_layer, capsys):
    path, image_id = two_layer
    root = str(tmp_path / "a")
    archive.load(ImageStore(root), path, quiet=True)
    assert _image_verb(root, "ls", "-q") == 0
    assert capsys.readouterr().out == image_id[7:19] + "\n"
    assert _image_verb(root, "inspect", "x/y:1") == 0
    assert json.loads(capsys.readouterr().out)[0]["Id"] == image_id
    assert _image_verb(root, "prune", "-f") == 0
    assert capsys.readouterr().out == "Total reclaimed space: 0B\n"
    assert _image_verb(root, "prune", "-a", "-f") == 0
    out = capsys.readouterr().out
    assert out.startswith("Deleted Images:\nuntagged: x/y:1\nuntagged: x/y:2\ndeleted: " + image_id)
    assert "Total reclaimed space:" in out and not out.endswith("0B\n")
