"""Hostile and ordinary layer tars against the fd-based extractor.

Every hostile case checks that a sentinel file outside the layer dir is
untouched and that nothing new appeared outside the layer.
"""

import gzip
import hashlib
import io
import os
import stat
import tarfile

import pytest

from minibox.image.unpack import LayerError, Limits, unpack, whiteout_target

SENTINEL_TEXT = b"do not touch\n"


def member(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, linkname="", mtime=1_000_000, pax=None, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = mtime
    ti.linkname = linkname
    ti.uid = kw.get("uid", 0)
    ti.gid = kw.get("gid", 0)
    ti.devmajor = kw.get("devmajor", 0)
    ti.devminor = kw.get("devminor", 0)
    if pax:
        ti.pax_headers = pax
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    return ti, data


def make_tar(*members, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


@pytest.fixture
def env(tmp_path):
    """A layer dir next to a sentinel file and an 'outside' dir a layer must not reach."""
    layer = tmp_path / "layer"
    layer.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    sentinel = tmp_path / "sentinel"
    sentinel.write_bytes(SENTINEL_TEXT)
    os.chmod(sentinel, 0o640)
    before = _snapshot(tmp_path, layer)
    yield layer, outside, sentinel
    st = os.lstat(sentinel)
    assert sentinel.read_bytes() == SENTINEL_TEXT
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_nlink == 1
    assert _snapshot(tmp_path, layer) == before, "something was created outside the layer dir"


def _snapshot(top, layer):
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        if os.path.abspath(dirpath).startswith(str(layer)):
            continue
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if p == str(layer):
                continue
            st = os.lstat(p)
            out.append((p, st.st_mode, st.st_size, st.st_nlink))
    return sorted(out)


def run(layer, raw, **kw):
    return unpack(io.BytesIO(raw), str(layer), **kw)


# --- hostile entries -----------------------------------------------------------

@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "./../escape", "a/b/../../../escape"])
def test_dotdot_rejected(env, name):
    layer, _outside, _sentinel = env
    with pytest.raises(LayerError, match="escapes the layer"):
        run(layer, make_tar(member(name, data=b"x")))


def test_dotdot_in_hardlink_target_rejected(env):
    layer, _outside, _sentinel = env
    with pytest.raises(LayerError, match="escapes the layer"):
        run(layer, make_tar(member("h", tarfile.LNKTYPE, linkname="../sentinel")))


def test_absolute_names_made_relative(env):
    layer, outside, _sentinel = env
    target = str(outside / "abs-file")
    run(layer, make_tar(member(target, data=b"in layer")))
    assert not os.path.exists(target)
    assert (layer / target.lstrip("/")).read_bytes() == b"in layer"


@pytest.mark.parametrize("link", ["ABS", "../outside", "../../outside", "."])
def test_symlinked_parent_then_write_rejected(env, link):
    layer, outside, _sentinel = env
    linkname = str(outside) if link == "ABS" else link
    with pytest.raises(LayerError, match="symlink or not a directory"):
        run(layer, make_tar(member("evil", tarfile.SYMTYPE, linkname=linkname),
                            member("evil/pwned", data=b"x")))
    assert os.listdir(outside) == []


def test_directory_replaced_by_symlink_then_write_rejected(env):
    layer, outside, _sentinel = env
    with pytest.raises(LayerError, match="symlink or not a directory"):
        run(layer, make_tar(member("d", tarfile.DIRTYPE, mode=0o755),
                            member("d/ok", data=b"1"),
                            member("d", tarfile.SYMTYPE, linkname=str(outside)),
                            member("d/pwned", data=b"x")))
    assert os.listdir(outside) == []


def test_symlink_then_write_replaces_the_link(env):
    layer, _outside, sentinel = env
    run(layer, make_tar(member("s", tarfile.SYMTYPE, linkname=str(sentinel)),
                        member("s", data=b"new content", mode=0o777)))
    assert not os.path.islink(layer / "s")
    assert (layer / "s").read_bytes() == b"new content"


def test_symlink_then_dir_does_not_follow(env):
    layer, outside, _sentinel = env
    run(layer, make_tar(member("s", tarfile.SYMTYPE, linkname=str(outside)),
                        member("s", tarfile.DIRTYPE, mode=0o777)))
    assert (layer / "s").is_dir() and not (layer / "s").is_symlink()
    assert stat.S_IMODE(os.stat(outside).st_mode) != 0o777
    assert os.listdir(outside) == []


@pytest.mark.parametrize("target", ["ABS", "sentinel", "outside/x"])
def test_hardlink_out_of_layer_rejected(env, target):
    layer, _outside, sentinel = env
    linkname = str(sentinel) if target == "ABS" else target
    with pytest.raises(LayerError, match="not an earlier file of this layer"):
        run(layer, make_tar(member("h", tarfile.LNKTYPE, linkname=linkname)))


def test_hardlink_through_symlinked_dir_rejected(env):
    layer, outside, _sentinel = env
    tar = make_tar(member("real", tarfile.DIRTYPE, mode=0o755),
                   member("real/f", data=b"f"),
                   member("lnk", tarfile.SYMTYPE, linkname=str(outside)),
                   member("h", tarfile.LNKTYPE, linkname="lnk/f"))
    with pytest.raises(LayerError):
        run(layer, tar)


def test_hardlink_to_symlink_links_the_symlink_itself(env):
    layer, _outside, sentinel = env
    run(layer, make_tar(member("s", tarfile.SYMTYPE, linkname=str(sentinel)),
                        member("h", tarfile.LNKTYPE, linkname="s")))
    assert os.path.islink(layer / "h")
    assert os.lstat(layer / "h").st_ino == os.lstat(layer / "s").st_ino


def test_hardlink_inside_layer(env):
    layer, _outside, _sentinel = env
    run(layer, make_tar(member("bin/a", data=b"exe", mode=0o755),
                        member("/usr/bin/b", tarfile.LNKTYPE, linkname="/bin/a")))
    assert os.stat(layer / "bin/a").st_ino == os.stat(layer / "usr/bin/b").st_ino
    assert os.stat(layer / "bin/a").st_nlink == 2


def test_hardlink_to_a_directory_rejected(env):
    layer, _outside, _sentinel = env
    with pytest.raises(LayerError):
        run(layer, make_tar(member("d", tarfile.DIRTYPE), member("h", tarfile.LNKTYPE, linkname="d")))


def test_device_nodes_are_not_created(env):
    layer, _outside, _sentinel = env
    st = run(layer, make_tar(member("dev", tarfile.DIRTYPE, mode=0o755),
                             member("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
                             member("dev/sda", tarfile.BLKTYPE, mode=0o660, devmajor=8, devminor=0),
                             member("dev/ok", data=b"ok")))
    assert sorted(os.listdir(layer / "dev")) == ["ok"]
    assert st.skipped == ["dev/null", "dev/sda"]


@pytest.mark.parametrize("name", [".wh..", ".wh...", ".wh.", "a/.wh..", "a/.wh...", ".wh..wh..opq"])
def test_invalid_whiteouts_rejected(env, name):
    layer, _outside, _sentinel = env
    with pytest.raises(LayerError, match="whiteout"):
        run(layer, make_tar(member("a", tarfile.DIRTYPE), member(name)))


def test_whiteout_policy_is_pure():
    assert whiteout_target("x", ("x",), "l", "x") == (None, None)
    assert whiteout_target(".wh.foo", ("a", ".wh.foo"), "l", "a/.wh.foo") == ("whiteout", "foo")
    assert whiteout_target(".wh..wh..opq", ("a", ".wh..wh..opq"), "l", "n") == ("opaque", None)
    assert whiteout_target(".wh..wh.plnk", ("a", ".wh..wh.plnk"), "l", "n") == ("meta", None)


def test_refuses_trusted_overlay_xattr(env):
    layer, _outside, _sentinel = env
    pax = {"SCHILY.xattr.trusted.overlay.opaque": "y"}
    with pytest.raises(LayerError, match="trusted.overlay.opaque"):
        run(layer, make_tar(member("d", tarfile.DIRTYPE, pax=pax)))


def test_unsafe_xattrs_dropped_safe_kept(env, tmp_path):
    layer, _outside, _sentinel = env
    probe = tmp_path / "layer" / ".probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.minibox-probe", b"1")
        user_ok = True
    except OSError:
        user_ok = False
    probe.unlink()
    pax = {"SCHILY.xattr.user.note": "hello", "SCHILY.xattr.trusted.other": "no",
           "SCHILY.xattr.security.selinux": "system_u:object_r:bin_t:s0"}
    run(layer, make_tar(member("f", data=b"x", pax=pax)))
    names = os.listxattr(layer / "f")
    assert "trusted.other" not in names
    if user_ok:
        assert os.getxattr(layer / "f", "user.note") == b"hello"


# --- bombs and corrupt input -------------------------------------------------------

def test_size_bomb_fails_cleanly(env):
    layer, _outside, _sentinel = env
    raw = gzip.compress(make_tar(member("zeros", data=b"\0" * (8 << 20))), compresslevel=9)
    assert len(raw) < 100_000
    with pytest.raises(LayerError, match="size limit"):
        run(layer, raw, limits=Limits(max_bytes=1 << 20))


def test_entry_bomb_fails_cleanly(env):
    layer, _outside, _sentinel = env
    raw = make_tar(*[member(f"f{i}") for i in range(50)])
    with pytest.raises(LayerError, match="more than 20 entries"):
        run(layer, raw, limits=Limits(max_entries=20))


def test_truncated_tar_rejected(env):
    layer, _outside, _sentinel = env
    raw = make_tar(member("big", data=b"y" * 100_000))
    with pytest.raises(LayerError):
        run(layer, raw[:50_000])


def test_corrupt_gzip_rejected(env):
    layer, _outside, _sentinel = env
    raw = bytearray(gzip.compress(make_tar(member("f", data=os.urandom(50_000)))))
    raw[len(raw) // 2] ^= 0xFF
    raw[len(raw) // 2 + 1] ^= 0xFF
    with pytest.raises(LayerError):
        run(layer, bytes(raw))


def test_overlong_name_rejected(env):
    layer, _outside, _sentinel = env
    with pytest.raises(LayerError, match="longer than"):
        run(layer, make_tar(member("a/" * 2100 + "f", data=b"x")))


# --- what must be kept ---------------------------------------------------------------

def test_modes_owners_mtimes_kept(env):
    layer, _outside, _sentinel = env
    run(layer, make_tar(
        member("./", tarfile.DIRTYPE, mode=0o755, mtime=111),
        member("tmp", tarfile.DIRTYPE, mode=0o1777, mtime=222),
        member("tmp/x", data=b"x", mtime=333),
        member("usr/bin/su", data=b"suid", mode=0o4755, uid=0, gid=0, mtime=444),
        member("usr/bin/wall", data=b"sgid", mode=0o2755, gid=5, mtime=555),
        member("ro", tarfile.DIRTYPE, mode=0o555, mtime=666),
        member("ro/inside", data=b"i", mode=0o400),
        member("link", tarfile.SYMTYPE, linkname="usr/bin/su", mtime=777),
    ))
    def mode(p):
        return stat.S_IMODE(os.lstat(layer / p).st_mode)
    assert mode("tmp") == 0o1777
    assert mode("usr/bin/su") == 0o4755
    assert mode("ro") == 0o555 and mode("ro/inside") == 0o400
    assert os.lstat(layer / "tmp").st_mtime == 222
    assert os.lstat(layer / "tmp/x").st_mtime == 333
    assert os.lstat(layer / "ro").st_mtime == 666
    assert os.lstat(layer / "link").st_mtime == 777
    assert os.lstat(layer).st_mtime == 111 and mode(".") == 0o755
    assert os.readlink(layer / "link") == "usr/bin/su"
    if os.geteuid() == 0:
        assert mode("usr/bin/wall") == 0o2755 and os.lstat(layer / "usr/bin/wall").st_gid == 5
    os.chmod(layer / "ro", 0o755)  # let tmp_path cleanup remove it


def test_owners_kept_when_root(env):
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    layer, _outside, _sentinel = env
    run(layer, make_tar(member("f", data=b"x", uid=1234, gid=5678, mode=0o4750),
                        member("s", tarfile.SYMTYPE, linkname="f", uid=42, gid=43)))
    st = os.lstat(layer / "f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4750)
    assert (os.lstat(layer / "s").st_uid, os.lstat(layer / "s").st_gid) == (42, 43)


def test_diff_id_is_sha256_of_the_tar_stream_plain_or_gzip(env):
    layer, _outside, _sentinel = env
    raw = make_tar(member("a", data=b"hello"), member("b", tarfile.DIRTYPE))
    want = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert run(layer, raw).diff_id == want
    other = layer.parent / "layer2"
    other.mkdir()
    try:
        st = unpack(io.BytesIO(gzip.compress(raw)), str(other))
        assert st.diff_id == want and st.size == 5 and st.entries == 2
    finally:
        import shutil
        shutil.rmtree(other)


def test_later_entries_replace_earlier(env):
    layer, _outside, _sentinel = env
    run(layer, make_tar(member("a", tarfile.DIRTYPE), member("a/x", data=b"1"),
                        member("a", data=b"now a file"),
                        member("b", data=b"file"), member("b", tarfile.DIRTYPE, mode=0o700),
                        member("c", data=b"one"), member("c", data=b"two")))
    assert (layer / "a").read_bytes() == b"now a file"
    assert (layer / "b").is_dir()
    assert (layer / "c").read_bytes() == b"two"


def test_implicit_parents_and_gnu_longnames(env):
    layer, _outside, _sentinel = env
    deep = "/".join(["d" * 100] * 5) + "/file"
    run(layer, make_tar(member(deep, data=b"deep"), fmt=tarfile.GNU_FORMAT))
    assert (layer / deep).read_bytes() == b"deep"
    assert stat.S_IMODE(os.stat(layer / deep.split("/")[0]).st_mode) == 0o755


def test_fifo_created(env):
    layer, _outside, _sentinel = env
    run(layer, make_tar(member("p", tarfile.FIFOTYPE, mode=0o620)))
    assert stat.S_ISFIFO(os.lstat(layer / "p").st_mode)
    assert stat.S_IMODE(os.lstat(layer / "p").st_mode) == 0o620


def test_zstd_layer(env):
    import shutil
    import subprocess

    if shutil.which("zstd") is None:
        pytest.skip("zstd tool not installed")
    layer, _outside, _sentinel = env
    raw = make_tar(member("z", data=b"zstd data" * 1000))
    comp = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True).stdout
    st = run(layer, comp)
    assert st.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (layer / "z").read_bytes() == b"zstd data" * 1000


def test_huge_pax_header_fails_before_it_is_held_in_memory(env):
    layer, _outside, _sentinel = env
    raw = make_tar(member("f", data=b"x", pax={"comment": "y" * (3 << 20)}))
    with pytest.raises(LayerError, match="tar header larger than"):
        run(layer, raw, limits=Limits(max_header=1 << 20))
    assert os.listdir(layer) == []
