"""`minibox run` as a user sees it: isolation, exit codes, flags, layers, cleanup.

Each test runs the installed minibox against a private root (see conftest).
"""

import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from conftest import requires

pytestmark = requires("root", "overlay", "busybox")


def unique(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


# -------------------------------------------------------------- isolation


def test_ps_shows_only_the_container_and_sh_is_pid_1(mb):
    r = mb("run", "--rm", "busybox", "sh", "-c", "ps -o pid,comm; true")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.strip().splitlines()[1:]]
    assert rows[0] == ["1", "sh"]
    assert len(rows) == 2 and rows[1][1] == "ps"


def test_hostname_is_the_short_id_not_the_hosts(mb):
    name = unique()
    r = mb("run", "--name", name, "busybox", "hostname")
    assert r.returncode == 0, r.stderr
    cid = mb("inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()
    assert r.stdout.strip() == cid[:12]
    assert r.stdout.strip() != os.uname().nodename
    mb("rm", name, check=True)


def test_network_none_has_only_loopback(mb):
    r = mb("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert r.returncode == 0, r.stderr
    names = [line.split(":")[1].strip() for line in r.stdout.strip().splitlines()]
    assert names == ["lo"]
    assert "UP" in r.stdout


def test_own_uts_ipc_and_mount_namespaces(mb):
    r = mb("run", "--rm", "busybox", "sh", "-c",
           "for n in uts ipc mnt pid net; do readlink /proc/1/ns/$n; done")
    assert r.returncode == 0, r.stderr
    inside = r.stdout.split()
    outside = [os.readlink(f"/proc/self/ns/{n}") for n in ("uts", "ipc", "mnt", "pid", "net")]
    assert all(a != b for a, b in zip(inside, outside)), (inside, outside)


def test_only_stdio_fds_cross_exec(mb):
    r = mb("run", "--rm", "busybox", "sh", "-c", "ls /proc/1/fd; true")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "1", "2"]


def test_dev_is_a_small_tmpfs_with_standard_devices(mb):
    r = mb("run", "--rm", "busybox", "sh", "-c", "ls /dev; grep ' /dev ' /proc/mounts")
    assert r.returncode == 0, r.stderr
    listing = set(r.stdout.split())
    for dev in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue"):
        assert dev in listing
    assert "sda" not in listing and "vda" not in listing
    assert "tmpfs /dev tmpfs" in r.stdout


def test_sys_is_read_only(mb):
    r = mb("run", "--rm", "busybox", "sh", "-c", "touch /sys/x 2>&1; grep ' /sys ' /proc/mounts")
    assert "Read-only file system" in r.stdout
    assert " ro," in r.stdout


def test_masked_and_readonly_proc_paths(mb):
    r = mb("run", "--rm", "busybox", "sh", "-c",
           "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/ns_last_pid; echo rc=$?")
    lines = r.stdout.split()
    assert lines[0] == "0" and lines[1] == "0"
    assert "rc=1" in r.stdout or "Read-only" in r.stderr


def test_etc_files_are_the_containers(mb):
    r = mb("run", "--rm", "--hostname", "boxy", "busybox", "sh", "-c", "cat /etc/hostname; cat /etc/hosts")
    assert r.stdout.splitlines()[0] == "boxy"
    assert "localhost" in r.stdout


# -------------------------------------------------------------- exit codes


@pytest.mark.parametrize("args,code", [
    (["busybox", "sh", "-c", "exit 3"], 3),
    (["busybox", "/nonexistent"], 127),
    (["busybox", "nosuchcommand"], 127),
    (["busybox", "/etc"], 126),
    (["-w", "/bin/cat", "busybox", "true"], 125),
    (["busybox", "sh", "-c", "kill -15 $$; echo still-here"], 0),  # PID 1 ignores unhandled signals
])
def test_exit_codes(mb, args, code):
    r = mb("run", "--rm", *args)
    assert r.returncode == code, (r.stdout, r.stderr)
    if code in (125, 126, 127):
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("minibox: ")


def test_bad_flag_is_125_with_usage_line(mb):
    r = mb("run", "--bogus", "busybox", "true")
    assert r.returncode == 125
    assert "--bogus" in r.stderr and "--help" in r.stderr


# --pull never, or a registry on a closed loopback port: tests never reach out to Docker Hub.
@pytest.mark.parametrize("args", [["--pull", "never", "nosuchimage"], ["--pull", "never", "busybox:nosuchtag"],
                                  ["127.0.0.1:9/nosuch/image"], ["library/UPPER"], ["bad::ref"]])
def test_bad_image_is_125_and_creates_nothing(fresh_mb, args):
    r = fresh_mb("run", "--rm", *args, "true")
    assert r.returncode == 125
    # docker's "Unable to find image ... locally" may come first; then one error line.
    errors = [line for line in r.stderr.splitlines() if not line.startswith("Unable to find image")]
    assert len(errors) == 1 and errors[0].startswith("minibox: "), r.stderr
    assert fresh_mb("ps", "-aq").stdout == ""


def test_duplicate_name_is_125_and_the_first_survives(mb):
    name = unique()
    mb("create", "--name", name, "busybox", "true", check=True)
    r = mb("run", "--name", name, "busybox", "true")
    assert r.returncode == 125 and "already in use" in r.stderr
    assert mb("rm", name).returncode == 0


def test_rm_flag_removes_failing_containers(fresh_mb):
    for args in (["sh", "-c", "exit 5"], ["/nonexistent"]):
        fresh_mb("run", "--rm", "busybox", *args)
    assert fresh_mb("ps", "-aq").stdout == ""
    assert mounts_under(fresh_mb.root) == []
    assert os.listdir(os.path.join(fresh_mb.root, "containers")) == []


def test_killed_by_signal_is_128_plus_n(mb):
    name = unique()
    proc = mb.popen("run", "--rm", "--name", name, "busybox", "sh", "-c", "echo ready; sleep 60",
                    stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    pid = json.loads(mb("inspect", name).stdout)[0]["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=20)
    assert proc.returncode == 137


def test_sigterm_to_minibox_reaches_the_container(mb):
    proc = mb.popen("run", "--rm", "busybox", "sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; "
                    "while true; do sleep 0.1; done", stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert "got-term" in out
    assert proc.returncode == 7


# -------------------------------------------------------------- flags


def test_env_workdir_user_entrypoint(mb, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=yes\nSHARED=file\n")
    r = mb("run", "--rm", "-e", "SHARED=flag", "--env-file", str(env_file), "-w", "/made/here",
           "-u", "www-data", "busybox", "sh", "-c", 'echo "$FROM_FILE $SHARED $(pwd) $(id -u):$(id -g) $HOME"')
    assert r.stdout.strip() == "yes flag /made/here 33:33 /var/www", r.stderr
    r = mb("run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint")
    assert r.stdout.strip() == "from entrypoint"


def test_unknown_user_is_125(mb):
    r = mb("run", "--rm", "-u", "nobody-here", "busybox", "true")
    assert r.returncode == 125 and "unable to find user" in r.stderr


def test_read_only_rootfs(mb):
    r = mb("run", "--rm", "--read-only", "busybox", "sh", "-c", "touch /x 2>&1; touch /tmp/y 2>&1; echo done")
    assert r.stdout.count("Read-only file system") == 2
    assert r.stdout.strip().endswith("done")


# -------------------------------------------------------------- lifecycle


def test_detached_container_stops_when_its_process_stops(mb):
    name = unique()
    r = mb("run", "-d", "--name", name, "busybox", "sleep", "1")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64
    assert "Up " in mb("ps").stdout
    deadline = time.time() + 10
    while time.time() < deadline:
        rows = [line for line in mb("ps", "-a").stdout.splitlines() if name in line]
        if rows and "Exited (0)" in rows[0]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(mb("ps", "-a").stdout)
    assert name not in mb("ps").stdout
    pid = json.loads(mb("inspect", name).stdout)[0]["State"]["Pid"]
    assert pid == 0
    assert mounts_under(os.path.join(mb.root, "containers", cid)) == []
    mb("rm", name, check=True)


def test_inspect_shape(mb):
    name = unique()
    mb("run", "--name", name, "-e", "X=1", "busybox", "sh", "-c", "exit 4")
    info = json.loads(mb("inspect", name, check=True).stdout)[0]
    assert info["Name"] == "/" + name
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 4
    assert info["State"]["OOMKilled"] is False
    assert info["Config"]["Cmd"] == ["sh", "-c", "exit 4"] and "X=1" in info["Config"]["Env"]
    assert info["GraphDriver"]["Name"] == "overlay2"
    assert info["GraphDriver"]["Data"]["UpperDir"].endswith("/diff")
    assert info["Config"]["Hostname"] == info["Id"][:12]
    mb("rm", name, check=True)


def test_rm_refuses_running_container_without_force(mb):
    name = unique()
    mb("run", "-d", "--name", name, "busybox", "sleep", "30", check=True)
    r = mb("rm", name)
    assert r.returncode != 0 and "is running" in r.stderr
    pid = json.loads(mb("inspect", name).stdout)[0]["State"]["Pid"]
    assert mb("rm", "-f", name).returncode == 0
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert mb("inspect", name).returncode == 1


def test_info_reports_overlay2_and_cgroups(mb):
    out = mb("info", check=True).stdout
    assert "Storage Driver: overlay2" in out
    assert "Cgroup Version:" in out and "Kernel Version:" in out


# -------------------------------------------------------------- layers and volumes


def test_two_containers_share_lower_layers_but_not_writes(mb):
    a, b = unique("a"), unique("b")
    mb("run", "-d", "--name", a, "busybox", "sh", "-c", "echo secret > /written; sleep 30", check=True)
    mb("run", "-d", "--name", b, "busybox", "sleep", "30", check=True)
    time.sleep(0.3)
    ia, ib = (json.loads(mb("inspect", n).stdout)[0] for n in (a, b))
    assert ia["GraphDriver"]["Data"]["LowerDir"] == ib["GraphDriver"]["Data"]["LowerDir"]
    assert ia["GraphDriver"]["Data"]["UpperDir"] != ib["GraphDriver"]["Data"]["UpperDir"]
    for path in ia["GraphDriver"]["Data"]["LowerDir"].split(":"):
        assert os.path.isdir(path)
    upper_a = ia["GraphDriver"]["Data"]["UpperDir"]
    assert open(os.path.join(upper_a, "written")).read() == "secret\n"
    r = subprocess.run(["nsenter", "-t", str(ib["State"]["Pid"]), "-m", "cat", "/written"], capture_output=True)
    assert r.returncode != 0
    mb("rm", "-f", a, b, check=True)
    assert not os.path.exists(upper_a)


def test_file_changes_disappear_without_volumes(mb):
    name = unique()
    mb("run", "--name", name, "busybox", "sh", "-c", "mkdir -p /data && echo hi > /data/f", check=True)
    mb("rm", name, check=True)
    r = mb("run", "--rm", "busybox", "cat", "/data/f")
    assert r.returncode != 0


def test_named_volume_and_bind_mount_persist(mb, tmp_path):
    vol = unique("vol")
    mb("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo kept > /data/f", check=True)
    r = mb("run", "--rm", "-v", f"{vol}:/data", "busybox", "cat", "/data/f")
    assert r.stdout == "kept\n"
    host = tmp_path / "host"
    host.mkdir()
    mb("run", "--rm", "-v", f"{host}:/data", "busybox", "sh", "-c", "echo bound > /data/g", check=True)
    assert (host / "g").read_text() == "bound\n"
    r = mb("run", "--rm", "-v", f"{host}:/data:ro", "busybox", "sh", "-c", "echo x > /data/h")
    assert r.returncode != 0 and not (host / "h").exists()


def test_no_mount_left_after_rm(fresh_mb):
    ids = [fresh_mb("run", "-d", "busybox", "sleep", "30", check=True).stdout.strip() for _ in range(3)]
    assert len(mounts_under(fresh_mb.root)) >= 3
    fresh_mb("rm", "-f", *ids, check=True)
    assert mounts_under(fresh_mb.root) == []
    assert os.listdir(os.path.join(fresh_mb.root, "containers")) == []


def test_state_dirs_are_private(mb):
    for sub in ("", "containers"):
        assert os.stat(os.path.join(mb.root, sub)).st_mode & 0o777 == 0o700


def _read_until(fd, marker: bytes, timeout: float = 20) -> bytes:
    import select

    out = b""
    deadline = time.time() + timeout
    while marker not in out and time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def test_interactive_tty_shell(mb):
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execv(mb.cmd[0], [*mb.cmd, "--root", mb.root, "run", "--rm", "-it", "busybox", "sh"])
    banner = _read_until(fd, b"# ")
    # busybox's line editor asks the terminal where the cursor is; answer as a terminal would.
    os.write(fd, b"\x1b[1;1R")
    assert b"# " in banner, banner
    os.write(fd, b"echo $((6*7)); tty; exit 5\n")
    text = _read_until(fd, b"\x00", timeout=20).decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    assert "42" in text
    assert "/dev/pts/0" in text
    assert os.waitstatus_to_exitcode(status) == 5
