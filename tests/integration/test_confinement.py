"""Capabilities, no_new_privs and seccomp applied for real, then checked after execve (root).

Each test forks a child that confines itself with minibox.runtime.security
and execs a probe (busybox or this Python); what the kernel reports in
/proc/self/status, or what a syscall returns, is the verdict. Where a
result could come from something other than the defence under test (a
capability check instead of the filter), a control run without the defence
shows the difference.
"""

import argparse
import errno
import os
import shutil
import sys
import traceback

import pytest

from minibox.security_flags import add_arguments, apply_to_spec

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
DEFAULT_MASK = 0xA80425FB


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    try:
        with open("/proc/self/status") as f:
            if "Seccomp:" not in f.read():
                return "kernel without seccomp (no Seccomp: line in /proc/self/status)"
    except OSError as e:
        return f"cannot read /proc/self/status: {e}"
    try:
        import minibox._caps  # noqa: F401
        import minibox._seccomp  # noqa: F401
    except ImportError as e:
        return f"minibox._caps/_seccomp not built: {e}"
    if not os.access(BUSYBOX, os.X_OK):
        return "busybox is not installed"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


def host_bounding() -> int:
    return int(status_of(open("/proc/self/status").read())["CapBnd"], 16)


def status_of(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def spec(*argv, user=None):
    p = argparse.ArgumentParser()
    add_arguments(p)
    s = apply_to_spec({"process": {}, "linux": {}}, p.parse_args(list(argv)))
    if user is not None:
        s["process"]["user"] = user
    return s["process"], s["linux"]


def run_confined(process, linux, argv, before=None, mode="confine"):
    """Fork, confine, exec ``argv``; return (exit code, stdout+stderr text).

    mode "confine": security.confine(); "runtime": what minibox's runtime
    does (prepare, apply, the uid switch, execve - no finish); "split": that
    plus finish() after the switch.
    """
    from minibox.runtime import security

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            if before:
                before()
            if mode == "confine":
                security.confine(process, linux)
            else:
                security.prepare(process, linux, cache_dir="")
                security.apply(process, linux)
                security.switch_user(process.get("user"))
                if mode == "split":
                    security.finish(process, linux)
            os.execv(argv[0], argv)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(99)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st), b"".join(chunks).decode(errors="replace")


def proc_status(process, linux, **kw):
    rc, out = run_confined(process, linux, [BUSYBOX, "cat", "/proc/self/status"], **kw)
    assert rc == 0, out
    return status_of(out)


def py(code: str) -> list[str]:
    return [sys.executable, "-S", "-c", code]


@pytest.mark.parametrize("mode", ["confine", "runtime", "split"])
def test_default_confinement_as_root(mode):
    st = proc_status(*spec(), mode=mode)
    want = DEFAULT_MASK & host_bounding()
    assert int(st["CapEff"], 16) == want
    assert int(st["CapPrm"], 16) == want
    assert int(st["CapBnd"], 16) == want
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
    assert st["NoNewPrivs"] == "0"
    assert st["Seccomp"] == "2"


def test_docker_mask_exactly_when_host_allows_it():
    if DEFAULT_MASK & ~host_bounding():
        pytest.skip("this host's bounding set lacks some of docker's default capabilities")
    assert proc_status(*spec())["CapEff"] == "00000000a80425fb"


def test_cap_drop_all_gives_nothing():
    st = proc_status(*spec("--cap-drop", "ALL"))
    for key in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
        assert int(st[key], 16) == 0, key


def test_cap_add_and_drop():
    st = proc_status(*spec("--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN"))
    eff = int(st["CapEff"], 16)
    assert eff & (1 << 12) and not eff & 1  # CAP_NET_ADMIN in, CAP_CHOWN out


@pytest.mark.parametrize("mode", ["confine", "runtime", "split"])
def test_non_root_user_keeps_no_capabilities(mode):
    process, linux = spec(user={"uid": 1000, "gid": 1000})
    st = proc_status(process, linux, mode=mode)
    assert st["Uid"].split()[:2] == ["1000", "1000"] and st["Gid"].split()[0] == "1000"
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
    assert int(st["CapAmb"], 16) == 0
    assert int(st["CapBnd"], 16) == DEFAULT_MASK & host_bounding()
    assert st["Seccomp"] == "2"


@pytest.mark.parametrize("mode", ["runtime", "split"])
def test_cap_drop_all_still_switches_user(mode):
    """The switch needs CAP_SETUID/SETGID: the spec's sets are applied only after it."""
    st = proc_status(*spec("--cap-drop", "ALL", user={"uid": 1000, "gid": 1000,
                                                      "additionalGids": [1000]}), mode=mode)
    assert st["Uid"].split()[0] == "1000" and int(st["CapEff"], 16) == 0


def test_ambient_capability_survives_for_non_root():
    caps = ["CAP_NET_BIND_SERVICE"]
    process = {"capabilities": {k: caps for k in
                                ("bounding", "effective", "permitted", "inheritable", "ambient")},
               "user": {"uid": 1000, "gid": 1000}}
    st = proc_status(process, {}, mode="split")
    assert int(st["CapAmb"], 16) == 1 << 10
    assert int(st["CapEff"], 16) == 1 << 10


def test_ambient_capability_for_root_without_finish():
    caps = ["CAP_NET_BIND_SERVICE"]
    process = {"capabilities": {k: caps for k in
                                ("bounding", "effective", "permitted", "inheritable", "ambient")}}
    st = proc_status(process, {}, mode="runtime")
    assert int(st["CapAmb"], 16) == 1 << 10 and int(st["CapInh"], 16) == 1 << 10


@pytest.mark.parametrize("mode", ["runtime", "split"])
def test_no_new_privileges(mode):
    st = proc_status(*spec("--security-opt", "no-new-privileges", user={"uid": 1000, "gid": 1000}),
                     mode=mode)
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"


def test_unconfined_and_privileged_have_no_filter():
    assert proc_status(*spec("--security-opt", "seccomp=unconfined"))["Seccomp"] == "0"
    st = proc_status(*spec("--privileged"))
    assert st["Seccomp"] == "0"
    assert int(st["CapEff"], 16) == host_bounding()


def test_normal_programs_work_under_the_default_filter():
    rc, out = run_confined(*spec(), [BUSYBOX, "sh", "-c", "ls / >/dev/null; echo ok"])
    assert (rc, out.strip()) == (0, "ok")


def test_threads_and_subprocess_work_under_the_default_filter():
    """glibc's posix_spawn tries clone3 first: it must get ENOSYS (then uses clone), not EPERM."""
    code = ("import threading, subprocess\n"
            "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
            f"print(subprocess.run([{BUSYBOX!r}, 'echo', 'child']).returncode)\n")
    rc, out = run_confined(*spec(), py(code))
    assert rc == 0, out
    assert out.split() == ["thread", "child", "0"]


SYSCALL_PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(nr, *[ctypes.c_ulong(a) for a in args])
    return ctypes.get_errno() if r == -1 else 0
print(call(435, 0, 0))                  # clone3(NULL, 0)
print(call(135, 0xFFFFFFFF))           # personality(query)
print(call(135, 0x0040000))            # personality(ADDR_NO_RANDOMIZE)
print(call(41, 40, 1, 0))              # socket(AF_VSOCK, SOCK_STREAM)
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers are x86_64's")
def test_argument_conditions():
    rc, out = run_confined(*spec(), py(SYSCALL_PROBE))
    assert rc == 0, out
    clone3, query, persona, vsock = map(int, out.split())
    assert clone3 == errno.ENOSYS
    assert query == 0
    assert persona == errno.EPERM
    assert vsock == errno.EPERM
    # Control: without the filter the kernel answers differently.
    rc, out = run_confined(*spec("--security-opt", "seccomp=unconfined"), py(SYSCALL_PROBE))
    c_clone3, _, c_persona, c_vsock = map(int, out.split())
    assert c_clone3 != errno.ENOSYS and c_persona == 0 and c_vsock != errno.EPERM


def test_user_namespace_is_refused_by_the_filter():
    cmd = [BUSYBOX, "unshare", "-r", "true"]
    rc, out = run_confined(*spec("--security-opt", "seccomp=unconfined"), cmd)
    if rc != 0:
        pytest.skip(f"unprivileged user namespaces are off on this host: {out.strip()}")
    rc, out = run_confined(*spec(), cmd)
    assert rc != 0 and "Operation not permitted" in out


def _private_mount_ns():
    from minibox import syscalls

    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)


def test_mount_is_refused_by_the_filter_even_with_sys_admin(tmp_path):
    pytest.importorskip("minibox._shim", reason="minibox._shim is not built")
    cmd = [BUSYBOX, "mount", "-t", "tmpfs", "none", str(tmp_path)]
    # CAP_SYS_ADMIN held, but the filter resolved for docker's default set.
    process, _ = spec("--cap-add", "SYS_ADMIN")
    _, default_linux = spec()
    rc, out = run_confined(process, default_linux, cmd, before=_private_mount_ns)
    assert rc != 0, out
    # Control: the profile resolved for SYS_ADMIN allows mount (docker's includes.caps).
    rc, out = run_confined(*spec("--cap-add", "SYS_ADMIN"), cmd, before=_private_mount_ns)
    assert rc == 0, out
    assert not os.path.ismount(tmp_path)  # it happened in the child's own mount namespace


def test_custom_docker_profile(tmp_path):
    prof = tmp_path / "deny-mkdir.json"
    prof.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", '
                    '"mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}')
    target = tmp_path / "d"
    rc, out = run_confined(*spec("--security-opt", f"seccomp={prof}"),
                           [BUSYBOX, "mkdir", str(target)])
    assert rc != 0 and "Permission denied" in out and not target.exists()


def test_prepared_program_and_cache(tmp_path):
    from minibox.runtime import seccomp

    process, linux = spec()
    cache = tmp_path / "cache"
    first = seccomp.prepare(linux["seccomp"], str(cache))
    (entry,) = list(cache.iterdir())
    assert cache.stat().st_mode & 0o777 == 0o700 and entry.stat().st_mode & 0o777 == 0o600
    assert seccomp.prepare(linux["seccomp"], str(cache)) == first
    # A damaged entry is never used: it is recompiled and rewritten.
    entry.write_bytes(entry.read_bytes().replace(b"libseccomp", b"libseccXmp", 1))
    assert seccomp.prepare(linux["seccomp"], str(cache)) == first
    assert b"libseccomp" in entry.read_bytes()
    # A different spec never matches the prepared program.
    other = dict(linux["seccomp"], defaultErrnoRet=13)
    assert seccomp.prepare(other, str(cache)) != first
    assert len(list(cache.iterdir())) == 2
    seccomp.prepare(linux["seccomp"])  # the child inherits this one
    assert proc_status(process, linux)["Seccomp"] == "2"


def test_security_prepare_uses_the_cache_dir_from_the_environment(tmp_path, monkeypatch):
    from minibox.runtime import security

    process, linux = spec("--cap-add", "SYS_PTRACE")
    monkeypatch.setenv("MINIBOX_SECCOMP_CACHE", str(tmp_path / "c"))
    security.prepare(process, linux)
    assert len(list((tmp_path / "c").iterdir())) == 1
    # A cache dir others could write to is not trusted, and nothing is left in it.
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    security.prepare(process, linux, cache_dir=str(shared))
    assert list(shared.iterdir()) == []
