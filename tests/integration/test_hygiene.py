"""Runtime hygiene: nothing of the host or of the runtime is reachable from inside.

Hostile images are made by rewriting the bundled busybox tar (its /proc,
/sys or /dev replaced by a symlink) and loading it with ``minibox import``.
"""

import os
import stat
import tarfile
import uuid

import pytest
from conftest import BUSYBOX_TAR, requires

from minibox import syscalls as sc

pytestmark = requires("overlay", "busybox")


def hostile_image(mb, tmp_path, name: str, target: str) -> str:
    """busybox with /<name> a symlink to ``target``; returns the image reference."""
    out_path = tmp_path / f"{name}-link.tar"
    with tarfile.open(BUSYBOX_TAR) as src, tarfile.open(out_path, "w") as out:
        for member in src.getmembers():
            norm = member.name.removeprefix("./").rstrip("/")
            if norm == name or norm.startswith(name + "/"):
                continue
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
        link = tarfile.TarInfo(f"./{name}")
        link.type, link.linkname = tarfile.SYMTYPE, target
        out.addfile(link)
    ref = f"mb-hostile-{name}-{uuid.uuid4().hex[:8]}:latest"
    mb("import", "-c", 'CMD ["sh"]', str(out_path), ref, check=True)
    return ref


@pytest.mark.parametrize(("name", "target"), [("proc", "/etc"), ("proc", "../../../../.."),
                                              ("sys", "/tmp"), ("dev", "../../tmp")])
def test_image_with_kernel_dir_as_symlink_is_refused(mb, tmp_path, name, target):
    ref = hostile_image(mb, tmp_path, name, target)
    try:
        r = mb("run", "--rm", "--network", "none", ref, "sh", "-c", "echo RAN")
        assert r.returncode == 125 and "RAN" not in r.stdout, (r.stdout, r.stderr)
        assert f"/{name} is a symlink" in r.stderr, r.stderr
    finally:
        mb("rmi", "-f", ref)


def test_workdir_through_proc_fd_is_refused(mb):
    for n in range(3, 12):
        r = mb("run", "--rm", "--network", "none", "-w", f"/proc/self/fd/{n}", "busybox", "sh", "-c",
               "echo INSIDE $(pwd); ls /")
        assert r.returncode == 125 and "INSIDE" not in r.stdout, (n, r.stdout, r.stderr)


@requires("root")
def test_enter_cwd_refuses_a_directory_fd_leaked_from_outside_the_root(tmp_path):
    """The CVE-2024-21626 shape: a host dir fd open across chroot, entered via /proc/self/fd/N."""
    from minibox.runtime import hygiene, process  # noqa: F401 - loaded before chroot, as in the runtime

    outside = tmp_path / "host-secret-dir"
    outside.mkdir()
    newroot = tmp_path / "root"
    (newroot / "proc").mkdir(parents=True)
    (newroot / "inside").mkdir()
    pid = os.fork()
    if pid == 0:
        code = 9
        try:
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_PRIVATE | sc.MS_REC)
            sc.mount("/proc", str(newroot / "proc"), None, sc.MS_BIND | sc.MS_REC)
            leaked = os.open(outside, os.O_RDONLY | os.O_DIRECTORY)
            os.chroot(newroot)
            os.chdir("/")
            hygiene.enter_cwd("/inside")  # an ordinary directory is fine
            os.chdir(f"/proc/self/fd/{leaked}")  # the kernel does follow it ...
            os.chdir("/")
            try:
                hygiene.enter_cwd(f"/proc/self/fd/{leaked}")  # ... so the check must refuse it
                code = 1
            except Exception as exc:  # noqa: BLE001 - report the kind to the parent
                code = 0 if "outside the container" in str(exc) else 2
                os.write(2, repr(exc).encode())
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, {1: "escaping cwd accepted", 2: "wrong error",
                                                     9: "setup failed"}.get(os.waitstatus_to_exitcode(status))


def test_runtime_is_not_reachable_from_inside(mb):
    # PID 1 is the container's program, never the host's Python; only 0 1 2 are
    # open in it (ls itself holds one more fd while it lists its own directory).
    r = mb("run", "--rm", "--network", "none", "busybox", "sh", "-c",
           "readlink /proc/1/exe; ls /proc/1/fd; echo ---; ls /proc/self/fd")
    assert r.returncode == 0, r.stderr
    exe, fds, self_fds = r.stdout.split("\n", 1)[0], *r.stdout.split("\n", 1)[1].split("---\n")
    assert exe == "/bin/busybox"
    assert fds.split() == ["0", "1", "2"]
    assert self_fds.split() == ["0", "1", "2", "3"]


def test_exec_process_exe_and_fds(mb):
    cid = mb("run", "-d", "--network", "none", "busybox", "sleep", "60", check=True).stdout.strip()
    try:
        r = mb("exec", cid, "sh", "-c", "readlink /proc/$$/exe; ls /proc/$$/fd; "
               "for p in /proc/[0-9]*; do readlink $p/exe; done; true")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split()
        assert lines[0] == "/bin/busybox" and lines[1:4] == ["0", "1", "2"]
        assert all(line == "/bin/busybox" for line in lines[4:] if line.startswith("/")), lines
        assert "python" not in r.stdout
    finally:
        mb("rm", "-f", cid)


def test_state_dirs_are_private_even_with_umask_0(mb):
    old = os.umask(0)
    try:
        cid = mb("create", "--network", "none", "busybox", "true", check=True).stdout.strip()
    finally:
        os.umask(old)
    try:
        root = mb.root
        dirs = [root, *(os.path.join(root, d) for d in os.listdir(root))]
        cdir = os.path.join(root, "containers", cid)
        dirs += [os.path.join(root, "containers"), cdir]
        image = os.path.join(root, "image")
        dirs += [os.path.join(image, d) for d in os.listdir(image)]
        if os.path.isdir("/run/minibox"):
            dirs += ["/run/minibox"]
        loose = [f"{d} {stat.filemode(os.stat(d).st_mode)}" for d in dirs
                 if os.path.isdir(d) and os.stat(d).st_mode & 0o077]
        assert not loose, loose
        files = [os.path.join(cdir, f) for f in os.listdir(cdir) if f.endswith(".json")]
        assert files and all(not os.stat(f).st_mode & 0o077 for f in files), \
            [(f, oct(os.stat(f).st_mode)) for f in files]
    finally:
        mb("rm", "-f", cid)
