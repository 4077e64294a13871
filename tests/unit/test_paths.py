"""secure_join keeps every resolution inside the rootfs (hostile images)."""

import os

from minibox.runtime.paths import make_path, secure_join


def test_plain_and_missing_components(tmp_path):
    (tmp_path / "etc").mkdir()
    assert secure_join(str(tmp_path), "/etc/passwd") == str(tmp_path / "etc" / "passwd")
    assert secure_join(str(tmp_path), "new/dir") == str(tmp_path / "new" / "dir")


def test_dotdot_stops_at_root(tmp_path):
    assert secure_join(str(tmp_path), "/../../etc/shadow") == str(tmp_path / "etc" / "shadow")


def test_absolute_symlink_is_resolved_inside(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink("/real", tmp_path / "etc")
    assert secure_join(str(tmp_path), "/etc/hosts") == str(tmp_path / "real" / "hosts")


def test_escaping_relative_symlink_is_clamped(tmp_path):
    os.symlink("../../../../tmp", tmp_path / "evil")
    assert secure_join(str(tmp_path), "/evil/x") == str(tmp_path / "tmp" / "x")


def test_symlink_loop_is_an_error(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    try:
        secure_join(str(tmp_path), "/a/x")
    except OSError as exc:
        assert "secure_join" in str(exc)
    else:
        raise AssertionError("a symlink loop must fail")


def test_make_path_creates_inside_through_planted_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(str(outside), root / "data")  # an absolute link to a host dir
    created = make_path(str(root), "/data/sub", mode=0o755)
    assert created == str(root / str(outside).lstrip("/") / "sub")
    assert os.path.isdir(created)
    assert list(outside.iterdir()) == []


def test_make_path_file(tmp_path):
    path = make_path(str(tmp_path), "/etc/hostname", is_file=True)
    assert os.path.isfile(path) and path.startswith(str(tmp_path))


def test_remove_tree_removes_links_not_their_targets(tmp_path):
    """rm -rf of an untrusted tree: a symlink to a directory outside is unlinked, never followed."""
    from minibox.image.fsutil import remove_tree

    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "file").write_text("precious")
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("x")
    (tree / "a" / "to-outside").symlink_to(outside)
    (tree / "link-file").symlink_to(outside / "keep" / "file")
    (tree / "a" / "b" / "locked").mkdir(mode=0o000)
    remove_tree(str(tree))
    assert not tree.exists()
    assert (outside / "keep" / "file").read_text() == "precious"
    remove_tree(str(tree))  # already gone: nothing to do
