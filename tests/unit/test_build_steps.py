"""Pure parts of the builder: image config changes, COPY destinations, layer tars, progress."""

import io
import os
import tarfile
from pathlib import Path

import pytest

from minibox.build import imageconfig
from minibox.build.copy import Item, copy_sources, destination, parse_chmod
from minibox.build.dockerfile import parse
from minibox.image.layerdiff import write_layer
from minibox.build.progress import Progress
from minibox.errors import MiniboxError


def ins(text: str):
    return parse("FROM scratch\n" + text).instructions[1]


def apply_all(lines: list[str], cfg=None) -> dict:
    cfg = {} if cfg is None else cfg
    state: dict = {}
    for line in lines:
        imageconfig.apply(cfg, ins(line), state)
    return cfg


def test_config_changes():
    cfg = apply_all([
        "ENV A=1 B=2", "ENV A=3", "WORKDIR /app", "WORKDIR sub/../src", "USER app:app",
        "EXPOSE 80 53/UDP", "LABEL a=b", "VOLUME /data", "STOPSIGNAL SIGINT",
        'SHELL ["/bin/bash", "-c"]', "CMD echo hi", "ONBUILD RUN make",
    ])
    assert cfg["Env"] == ["B=2", "A=3"]
    assert cfg["WorkingDir"] == "/app/src"
    assert cfg["User"] == "app:app"
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"a": "b"} and cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Cmd"] == ["/bin/bash", "-c", "echo hi"]
    assert cfg["OnBuild"] == ["RUN make"]


def test_entrypoint_clears_inherited_cmd_only():
    inherited = apply_all(['ENTRYPOINT ["/app"]'], {"Cmd": ["sh"]})
    assert inherited["Entrypoint"] == ["/app"] and inherited["Cmd"] is None
    same_stage = apply_all(['CMD ["--help"]', 'ENTRYPOINT ["/app"]'], {"Cmd": ["sh"]})
    assert same_stage["Cmd"] == ["--help"]


def test_healthcheck():
    cfg = apply_all(['HEALTHCHECK --interval=1m30s --retries=3 CMD curl -f http://x || exit 1'])
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f http://x || exit 1"],
                                  "Interval": 90 * 10**9, "Retries": 3}
    assert apply_all(["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}
    with pytest.raises(MiniboxError, match="invalid duration"):
        apply_all(["HEALTHCHECK --interval=soon CMD true"])


def test_initial_config_is_a_copy():
    base = {"config": {"Env": ["A=1"]}, "rootfs": {"type": "layers", "diff_ids": ["x"]}}
    cfg = imageconfig.initial_config(base)
    cfg["config"]["Env"].append("B=2")
    assert base["config"]["Env"] == ["A=1"]
    assert imageconfig.initial_config(None)["rootfs"]["diff_ids"] == []


@pytest.mark.parametrize("dest,workdir,expected", [
    ("/app", "/", "/app"),
    ("/app/", "/", "/app/"),
    ("app", "/w", "/w/app"),
    ("app/", "/w", "/w/app/"),
    (".", "/w", "/w/"),
    ("./", "/w", "/w/"),
    ("../x", "/w/y", "/w/x"),
    ("/", "/w", "/"),
    ("/a//b/./c", "/", "/a/b/c"),
])
def test_destination(dest, workdir, expected):
    assert destination(dest, workdir) == expected


def test_parse_chmod():
    assert parse_chmod("0755") == 0o755 and parse_chmod(None) is None
    for bad in ("u+x", "99999", "rwx"):
        with pytest.raises(MiniboxError):
            parse_chmod(bad)


def _items(base, rel_paths):
    out = []
    for rel in rel_paths:
        host = os.path.join(base, rel) if rel else base
        out.append(Item(rel, host, os.lstat(host)))
    return out


def test_copy_rules_in_a_plain_rootfs(tmp_path):
    """Copies keep the caller's own uid here, so this runs without root."""
    me = (os.getuid(), os.getgid())
    src = tmp_path / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "d" / "sub" / "f").write_text("f")
    (src / "file.txt").write_text("x")
    os.chmod(src / "file.txt", 0o751)
    rootfs = tmp_path / "rootfs"
    (rootfs / "existing").mkdir(parents=True)
    rootfs = str(rootfs)
    # A file to a path without a slash: the file is named that path.
    copy_sources(rootfs, [_items(str(src), ["file.txt"])], "/opt/renamed", owner=me, keep_owner=False, chmod=None)
    assert Path(rootfs, "opt/renamed").read_text() == "x"
    assert os.stat(os.path.join(rootfs, "opt/renamed")).st_mode & 0o7777 == 0o751
    # ... into an existing directory: keeps its name.
    copy_sources(rootfs, [_items(str(src), ["file.txt"])], "/existing", owner=me, keep_owner=False, chmod=0o600)
    assert os.stat(os.path.join(rootfs, "existing/file.txt")).st_mode & 0o7777 == 0o600
    # A directory copies its contents.
    d = str(src / "d")
    items = [Item("d", d, os.lstat(d))] + [Item(r, os.path.join(d, r), os.lstat(os.path.join(d, r)))
                                           for r in ("sub", "sub/f")]
    copy_sources(rootfs, [items], "/dst", owner=me, keep_owner=False, chmod=None)
    assert Path(rootfs, "dst/sub/f").read_text() == "f"
    assert not os.path.exists(os.path.join(rootfs, "dst/d"))
    # Several sources need a directory destination ending in /.
    with pytest.raises(MiniboxError, match="must be a directory and end with a /"):
        copy_sources(rootfs, [_items(str(src), ["file.txt"]), _items(str(src), ["file.txt"])], "/many",
                     owner=me, keep_owner=False, chmod=None)
    with pytest.raises(MiniboxError, match="(?i)not a directory"):
        copy_sources(rootfs, [_items(str(src), ["file.txt"])], "/opt/renamed/x/", owner=me,
                     keep_owner=False, chmod=None)


def test_copy_through_a_hostile_symlink_stays_inside(tmp_path):
    me = (os.getuid(), os.getgid())
    outside = tmp_path / "outside"
    outside.mkdir()
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    os.symlink(str(outside), rootfs / "evil")           # absolute host path
    os.symlink("../../../../outside", rootfs / "evil2")  # climbs out
    src = tmp_path / "f"
    src.write_text("x")
    for dest in ("/evil/", "/evil2/"):
        copy_sources(str(rootfs), [_items(str(tmp_path), ["f"])], dest, owner=me, keep_owner=False, chmod=None)
    assert os.listdir(outside) == []
    assert (rootfs / str(outside).lstrip("/") / "f").read_text() == "x"
    assert (rootfs / "outside" / "f").read_text() == "x"


def test_layer_tar_from_a_plain_upper_dir(tmp_path):
    upper = tmp_path / "upper"
    (upper / "b" / "c").mkdir(parents=True)
    (upper / "b" / "c" / "file").write_text("hello")
    (upper / "a.txt").write_text("a")
    os.link(upper / "a.txt", upper / "hard")
    os.symlink("a.txt", upper / "sym")
    (upper / "proc").mkdir()
    (upper / "dev").mkdir()
    (upper / "dev" / "kept").write_text("x")
    (upper / "etc").mkdir()
    (upper / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    out = tmp_path / "layer.tar"
    n = write_layer(str(upper), str(out), skip={"proc", "dev"}, always_skip={"etc/hosts"})
    with tarfile.open(out) as tf:
        members = tf.getmembers()
        names = [m.name for m in members]
        # proc (empty, skipped), etc (only a skipped file) are left out.
        assert names == ["a.txt", "b", "dev", "hard", "sym", "b/c", "b/c/file", "dev/kept"]
        assert n == len(names)
        by = {m.name: m for m in members}
        assert by["hard"].islnk() and by["hard"].linkname == "a.txt"
        assert by["sym"].issym() and by["sym"].linkname == "a.txt"
        assert tf.extractfile("b/c/file").read() == b"hello"
    # A directory holding nothing but skipped files is left out with them.
    only = tmp_path / "only"
    (only / "etc").mkdir(parents=True)
    (only / "etc" / "hosts").write_text("x")
    assert write_layer(str(only), str(tmp_path / "only.tar"), always_skip={"etc/hosts"}) == 0
    # Same content, same tar: the layer's diff_id does not depend on walk order.
    out2 = tmp_path / "layer2.tar"
    write_layer(str(upper), str(out2), skip={"proc", "dev"}, always_skip={"etc/hosts"})
    assert out.read_bytes() == out2.read_bytes()


def test_empty_upper_gives_no_entries(tmp_path):
    (tmp_path / "upper").mkdir()
    assert write_layer(str(tmp_path / "upper"), str(tmp_path / "l.tar")) == 0


def test_progress_plain_format():
    buf = io.StringIO()
    p = Progress(buf)
    v = p.vertex("[1/2] FROM busybox")
    v.cached()
    v = p.vertex("[2/2] RUN echo hi")
    v.log("hi", 0.0123)
    v.done()
    v = p.vertex("[3/3] RUN false")
    v.error("exit code: 1")
    lines = buf.getvalue().splitlines()
    assert lines[:3] == ["", "#1 [1/2] FROM busybox", "#1 CACHED"]
    assert lines[4:6] == ["#2 [2/2] RUN echo hi", "#2 0.012 hi"]
    assert lines[6].startswith("#2 DONE ") and lines[6].endswith("s")
    assert lines[-1] == "#3 ERROR: exit code: 1"
    quiet = io.StringIO()
    Progress(quiet, quiet=True).vertex("x").done()
    assert quiet.getvalue() == ""


def test_build_args_flag(monkeypatch):
    from minibox.commands.build import _build_args

    monkeypatch.setenv("FROM_ENV", "e")
    monkeypatch.delenv("NOT_SET", raising=False)
    assert _build_args(["A=1", "B=", "C=x=y", "FROM_ENV", "NOT_SET"]) == {"A": "1", "B": "", "C": "x=y",
                                                                          "FROM_ENV": "e"}
    with pytest.raises(MiniboxError):
        _build_args(["=1"])
