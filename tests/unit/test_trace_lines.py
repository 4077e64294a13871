"""The ``--trace`` lines that are pure formatting: mount options and namespace flags."""

from minibox.runtime import mounts, tracing


def plan_of(mount_list):
    return mounts.plan({"root": {"path": "/r"}, "mounts": mount_list}, "/b")


def test_a_mount_line_names_type_source_target_and_every_option():
    p = plan_of([
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/data", "type": "bind", "source": "/nonexistent-src", "options": ["rbind", "rprivate", "ro"]},
        {"destination": "/one", "type": "bind", "source": "/nonexistent-src", "options": ["bind"]},
    ])
    assert [op.describe() for op in p.mounts] == [
        "mount proc proc -> /proc (nosuid,nodev,noexec)",
        "mount sysfs sysfs -> /sys (ro,nosuid,nodev,noexec)",
        "mount tmpfs tmpfs -> /dev (nosuid,strictatime,mode=755,size=65536k)",
        "mount bind /nonexistent-src -> /data (rbind,ro,rprivate)",
        "mount bind /nonexistent-src -> /one (bind)",
    ]


def test_namespace_lines_name_the_clone_flags_and_joined_paths():
    lines = []
    tracing.namespaces(lines.append, {"pid": None, "network": "/proc/7/ns/net", "mount": None,
                                      "uts": None, "ipc": None, "cgroup": None})
    assert lines == [
        "unshare(CLONE_NEWPID) + fork: the child is PID 1 of a new PID namespace",
        "unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC) in the child",
        "setns network /proc/7/ns/net",
        "unshare(CLONE_NEWCGROUP) in the child, after it joined its cgroup",
    ]


def test_the_untraced_runtime_does_not_import_the_trace_helpers():
    import subprocess
    import sys

    code = ("import sys, minibox.runtime.process, minibox.engine.containers, minibox.commands.run;"
            "print('minibox.runtime.tracing' in sys.modules)")
    # cwd "/": "-c" puts the cwd first on sys.path, and the source tree has no built shim.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd="/").stdout
    assert out.strip() == "False"
