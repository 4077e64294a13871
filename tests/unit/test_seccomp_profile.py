"""Docker profile -> OCI filter resolution and OCI filter -> libseccomp rules (no root)."""

import errno

import pytest

from minibox.errors import MiniboxError, UsageError
from minibox.runtime import seccomp
from minibox.security import profile
from minibox.security_flags import DEFAULT_CAPS

AMD64 = ("amd64", "SCMP_ARCH_X86_64", (6, 1))
DEFAULT = profile.load_profile(profile.DEFAULT_PROFILE)


def names_with(oci, action="SCMP_ACT_ALLOW"):
    out = {}
    for e in oci["syscalls"]:
        if e["action"] == action:
            for n in e["names"]:
                out.setdefault(n, []).append(e)
    return out


def test_default_profile_shape():
    oci = profile.to_oci(DEFAULT, list(DEFAULT_CAPS), AMD64)
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO" and oci["defaultErrnoRet"] == errno.EPERM
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = names_with(oci)
    for needed in ("read", "write", "openat", "execve", "exit_group", "mmap", "futex",
                   "rt_sigaction", "wait4", "clone", "socket", "arch_prctl", "chroot",
                   "setresuid", "capset", "prctl"):
        assert needed in allowed, needed
    for blocked in ("mount", "umount2", "unshare", "setns", "pivot_root", "reboot", "bpf",
                    "init_module", "kexec_load", "keyctl", "add_key", "open_by_handle_at",
                    "userfaultfd", "io_uring_setup", "perf_event_open", "swapon", "clock_settime"):
        assert blocked not in allowed, blocked


def test_default_clone_has_no_namespace_flags():
    oci = profile.to_oci(DEFAULT, list(DEFAULT_CAPS), AMD64)
    (clone,) = names_with(oci)["clone"]
    (arg,) = clone["args"]
    assert arg["index"] == 0 and arg["op"] == "SCMP_CMP_MASKED_EQ" and arg["valueTwo"] == 0
    # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
    assert arg["value"] == 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 \
        | 0x20000000 | 0x40000000


def test_default_clone3_is_enosys_so_libc_falls_back():
    oci = profile.to_oci(DEFAULT, list(DEFAULT_CAPS), AMD64)
    (c3,) = names_with(oci, "SCMP_ACT_ERRNO")["clone3"]
    assert c3["errnoRet"] == errno.ENOSYS


def test_default_personality_values():
    oci = profile.to_oci(DEFAULT, list(DEFAULT_CAPS), AMD64)
    (p,) = names_with(oci)["personality"]
    assert sorted(a["value"] for a in p["args"]) == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert {a["op"] for a in p["args"]} == {"SCMP_CMP_EQ"}


def test_sys_admin_unlocks_namespaces_and_mount():
    oci = profile.to_oci(DEFAULT, list(DEFAULT_CAPS) + ["CAP_SYS_ADMIN"], AMD64)
    allowed = names_with(oci)
    for n in ("mount", "umount2", "unshare", "setns", "clone3"):
        assert n in allowed
    assert [e.get("args") for e in allowed["clone"]] == [None]  # unrestricted clone
    assert "clone3" not in names_with(oci, "SCMP_ACT_ERRNO")


def test_cap_drop_sys_chroot_removes_chroot():
    caps = [c for c in DEFAULT_CAPS if c != "CAP_SYS_CHROOT"]
    assert "chroot" not in names_with(profile.to_oci(DEFAULT, caps, AMD64))


def test_arch_and_kernel_conditions():
    prof = {"defaultAction": "SCMP_ACT_ERRNO", "archMap": [
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["b"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.10"}},
            {"names": ["c"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.10"}},
            {"names": ["d"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_A", "CAP_B"]}},
            {"names": ["e"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
        ]}
    arm_old = profile.to_oci(prof, ["CAP_A"], ("arm64", "SCMP_ARCH_AARCH64", (5, 4)))
    assert arm_old["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert set(names_with(arm_old)) == {"a", "c", "e"}
    amd_new = profile.to_oci(prof, ["CAP_A", "CAP_B"], ("amd64", "SCMP_ARCH_X86_64", (5, 10)))
    assert amd_new["architectures"] == []
    assert set(names_with(amd_new)) == {"b", "d"}


def test_legacy_architectures_and_name_fields():
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO", "comment": "x"}]}
    oci = profile.to_oci(prof, [], AMD64)
    assert oci == {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}


def test_entry_without_action_is_a_usage_error():
    with pytest.raises(UsageError, match=r"syscalls\[0\]"):
        profile.to_oci({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"]}]}, [], AMD64)


def test_host_facts_kernel_version():
    assert profile._version("6.18.44-fc-v657") == (6, 18)
    assert profile._version("5.4") == (5, 4)


# --- OCI filter -> libseccomp rules -------------------------------------------

def test_action_codes():
    assert seccomp.action_code("SCMP_ACT_ALLOW") == 0x7FFF0000
    assert seccomp.action_code("SCMP_ACT_ERRNO") == 0x00050000 | errno.EPERM
    assert seccomp.action_code("SCMP_ACT_ERRNO", 38) == 0x00050026
    assert seccomp.action_code("SCMP_ACT_KILL") == 0
    assert seccomp.action_code("SCMP_ACT_KILL_PROCESS") == 0x80000000
    with pytest.raises(MiniboxError, match="SCMP_ACT_NOTIFY"):
        seccomp.action_code("SCMP_ACT_NOTIFY")
    with pytest.raises(MiniboxError, match="errnoRet"):
        seccomp.action_code("SCMP_ACT_ERRNO", 70000)


def test_compile_rules_drops_default_action_and_splits_same_index():
    spec = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 0xFF, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]},
            ]}
    default, arches, rules = seccomp.compile_rules(spec)
    assert default == 0x00050001 and arches == ["x86_64"]
    assert rules == [
        (0x7FFF0000, "read", []), (0x7FFF0000, "write", []),
        (0x7FFF0000, "personality", [(0, 4, 0, 0)]), (0x7FFF0000, "personality", [(0, 4, 8, 0)]),
        (0x7FFF0000, "ioctl", [(0, 4, 1, 0), (1, 7, 0xFF, 3)]),
    ]


def test_compile_rules_rejects_bad_conditions_and_flags():
    base = {"defaultAction": "SCMP_ACT_ALLOW"}
    with pytest.raises(MiniboxError, match="mkdir"):
        seccomp.compile_rules({**base, "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                     "args": [{"index": 0, "op": "SCMP_CMP_WHAT"}]}]})
    with pytest.raises(MiniboxError, match="index 6"):
        seccomp.compile_rules({**base, "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                                                     "args": [{"index": 6, "op": "SCMP_CMP_EQ"}]}]})
    with pytest.raises(MiniboxError, match="flags"):
        seccomp.compile_rules({**base, "flags": ["SECCOMP_FILTER_FLAG_LOG"]})


def test_arch_names():
    assert seccomp.arch_name("SCMP_ARCH_X86_64") == "x86_64"
    assert seccomp.arch_name("SCMP_ARCH_X32") == "x32"
    assert seccomp.arch_name("SCMP_ARCH_AARCH64") == "aarch64"


def test_libseccomp_constants_match():
    mod = pytest.importorskip("minibox._seccomp", reason="minibox._seccomp is not built")
    lib = mod.lib
    assert seccomp.ACT_ALLOW == lib.SCMP_ACT_ALLOW
    assert seccomp.ACT_KILL_PROCESS == lib.SCMP_ACT_KILL_PROCESS
    assert seccomp.ACT_KILL_THREAD == lib.SCMP_ACT_KILL_THREAD
    assert seccomp.ACT_TRAP == lib.SCMP_ACT_TRAP
    assert seccomp.ACT_LOG == lib.SCMP_ACT_LOG
    for name, value in seccomp.OPS.items():
        assert getattr(lib, name) == value


def test_every_default_name_is_known_to_libseccomp_or_newer():
    """A typo in the profile would silently allow nothing; libseccomp must know each name."""
    mod = pytest.importorskip("minibox._seccomp", reason="minibox._seccomp is not built")
    # Names newer than libseccomp 2.5.4's table (skipped at load, as runc does).
    newer = {"cachestat", "fchmodat2", "map_shadow_stack", "futex_wait", "futex_wake",
             "futex_requeue", "mseal", "set_mempolicy_home_node"}
    unknown = set()
    for entry in DEFAULT["syscalls"]:
        for n in entry["names"]:
            if mod.lib.seccomp_syscall_resolve_name(n.encode()) == -1 and n not in newer:
                unknown.add(n)
    assert not unknown
