"""diff and commit: a container's upper dir read back as changes and as a new layer.

Needs root: the upper dir holds overlay whiteouts (char 0/0) and trusted.*
opaque markers, as overlayfs writes them.
"""

import io
import os
import stat
import subprocess

import pytest

from minibox.image.layerdiff import changes, layer_tar
from minibox.image.unpack import OPAQUE_XATTR, unpack
from conftest import minibox_command  # the installed console script, as a user runs it

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, trusted xattrs)")]


@pytest.fixture
def dirs(tmp_path):
    lower = tmp_path / "lower"
    for p in ("etc", "var/www", "home/u", "gone-dir"):
        (lower / p).mkdir(parents=True)
    for p in ("etc/passwd", "etc/hostname", "var/www/index.html", "home/u/f", "old"):
        (lower / p).write_text(p)
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/passwd").write_text("changed")
    (upper / "etc/new").write_text("new")
    os.mknod(upper / "old", stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(upper / "gone-dir", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "home").mkdir()
    os.setxattr(upper / "home", OPAQUE_XATTR, b"y")
    (upper / "home/fresh").write_text("fresh")
    (upper / "link").symlink_to("/etc/passwd")
    return str(lower), str(upper)


def test_changes(dirs):
    lower, upper = dirs
    assert changes(upper, [lower]) == [
        ("C", "/etc"), ("A", "/etc/new"), ("C", "/etc/passwd"), ("D", "/gone-dir"),
        ("C", "/home"), ("A", "/home/fresh"), ("A", "/link"), ("D", "/old"),
    ]


def test_changes_respect_lower_whiteouts(tmp_path):
    bottom, top, upper = (tmp_path / n for n in ("bottom", "top", "upper"))
    (bottom / "d").mkdir(parents=True)
    (bottom / "d/x").write_text("x")
    top.mkdir()
    os.mknod(top / "d", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "d").mkdir(parents=True)
    (upper / "d/x").write_text("again")
    assert changes(str(upper), [str(top), str(bottom)]) == [("A", "/d"), ("A", "/d/x")]


def test_layer_tar_round_trips_whiteouts(dirs, tmp_path):
    _, upper = dirs
    buf = io.BytesIO()
    layer_tar(upper, buf)
    out = tmp_path / "out"
    out.mkdir()
    unpack(io.BytesIO(buf.getvalue()), str(out))
    st = os.lstat(out / "old")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(out / "home", OPAQUE_XATTR) == b"y"
    assert (out / "etc/new").read_text() == "new"
    assert os.readlink(out / "link") == "/etc/passwd"


def _run_unavailable():
    try:
        import minibox.cgroups  # noqa: F401 - the runtime needs it to start a container
    except ImportError:
        return "minibox run needs the cgroups driver (minibox.cgroups), not in this build"
    return None


@pytest.mark.skipif(bool(_run_unavailable()), reason=_run_unavailable() or "")
def test_diff_and_commit_cli(tmp_path):
    def mb(*args):
        return subprocess.run([*minibox_command(), "--root", str(tmp_path / "root"), *args], cwd=REPO,
                              capture_output=True, text=True, timeout=60, check=False)

    rootfs = tmp_path / "busybox.tar"
    r = subprocess.run(["sh", os.path.join(REPO, "rootfs", "build.sh"), str(rootfs)], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot build the busybox rootfs: {r.stderr.strip()}")
    assert mb("import", "-c", 'CMD ["sh"]', str(rootfs), "busybox:latest").returncode == 0
    name = f"mbx-commit-{os.getpid()}"
    try:
        r = mb("run", "--name", name, "--network", "none", "busybox", "sh", "-c",
               "echo hi > /etc/motd; rm /var/www/index.html; rm -rf /home; mkdir /home; touch /home/h")
        assert r.returncode == 0, r.stderr
        r = mb("diff", name)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        for want in ("C /etc", "A /etc/motd", "D /var/www/index.html", "C /home", "A /home/h"):
            assert want in lines, r.stdout
        r = mb("commit", "-m", "snap", "-c", 'CMD ["cat", "/etc/motd"]', name, "snap:1")
        assert r.returncode == 0 and r.stdout.startswith("sha256:"), r.stderr
        r = mb("run", "--rm", "--network", "none", "snap:1")
        assert r.returncode == 0 and r.stdout == "hi\n", r.stderr
        r = mb("run", "--rm", "--network", "none", "snap:1", "sh", "-c", "ls /var/www; ls -A /home")
        assert r.stdout == "h\n", r.stdout + r.stderr
        r = mb("history", "snap:1")
        assert "snap" in r.stdout.splitlines()[1] and len(r.stdout.splitlines()) == 3
    finally:
        mb("rm", "-f", name)
        mb("rm", "-f", *mb("ps", "-aq").stdout.split())
