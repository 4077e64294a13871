"""Confinement of a real `minibox run` container, as seen from inside it.

Uses the conftest's private root and the installed minibox. The flag tests
probe `minibox run --help` and skip while the CLI does not offer the flag.
"""

import os
import subprocess

import pytest


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            return "overlayfs is not in /proc/filesystems"
    return None


# The conftest's `mb` fixture supplies the root, the image and the command.
pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


def status(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def host_bounding() -> int:
    with open("/proc/self/status") as f:
        return int(status(f.read())["CapBnd"], 16)


_HELP: dict[str, str] = {}


def needs_flag(mb, flag: str):
    if "run" not in _HELP:
        _HELP["run"] = subprocess.run([*mb.cmd, "run", "--help"], capture_output=True,
                                      text=True).stdout
    if flag not in _HELP["run"]:
        pytest.skip(f"`minibox run` does not offer {flag} yet (security_flags.add_arguments)")


def container_status(mb, *flags):
    r = mb("run", "--rm", *flags, "busybox", "cat", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    return status(r.stdout)


def test_default_container_has_dockers_confinement(mb):
    st = container_status(mb)
    assert int(st["CapEff"], 16) == 0xA80425FB & host_bounding()
    assert int(st["CapBnd"], 16) == 0xA80425FB & host_bounding()
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0
    assert st["NoNewPrivs"] == "0" and st["Seccomp"] == "2"


def test_non_root_user_has_no_effective_capabilities(mb):
    st = container_status(mb, "-u", "1000")
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0 and st["Seccomp"] == "2"


def test_user_namespace_and_mount_are_refused_inside(mb):
    r = mb("run", "--rm", "busybox", "sh", "-c",
           "busybox unshare -r true; echo unshare=$?; mount -t tmpfs none /mnt; echo mount=$?")
    assert "unshare=0" not in r.stdout and "mount=0" not in r.stdout, r.stdout
    assert "Operation not permitted" in r.stderr


def test_cap_drop_all(mb):
    needs_flag(mb, "--cap-drop")
    st = container_status(mb, "--cap-drop", "ALL")
    assert int(st["CapEff"], 16) == 0 and int(st["CapBnd"], 16) == 0


def test_no_new_privileges(mb):
    needs_flag(mb, "--security-opt")
    assert container_status(mb, "--security-opt", "no-new-privileges")["NoNewPrivs"] == "1"


def test_seccomp_unconfined(mb):
    needs_flag(mb, "--security-opt")
    assert container_status(mb, "--security-opt", "seccomp=unconfined")["Seccomp"] == "0"


def test_unknown_capability_is_exit_125(mb):
    needs_flag(mb, "--cap-add")
    r = mb("run", "--rm", "--cap-add", "FLY", "busybox", "true")
    assert r.returncode == 125 and 'unknown capability: "CAP_FLY"' in r.stderr


def test_cap_add_sys_admin_allows_mount(mb):
    needs_flag(mb, "--cap-add")
    r = mb("run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "mount", "-t", "tmpfs", "none", "/mnt")
    assert r.returncode == 0, r.stderr


def test_privileged(mb):
    needs_flag(mb, "--privileged")
    st = container_status(mb, "--privileged")
    assert st["Seccomp"] == "0" and int(st["CapEff"], 16) == host_bounding()
