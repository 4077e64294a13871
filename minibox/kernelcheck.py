"""What the running kernel offers minibox, and what each missing piece disables.

Like ``docker check-config`` / ``lxc-checkconfig``, but read from the live
system (/proc, /sys, the cgroup mounts), falling back to the kernel config
(/proc/config.gz, /boot/config-<release>) and the module lists only where
the live system cannot tell (a veth driver leaves no trace until used).
Every path is injectable so the report is unit-tested against a fake tree.
"""

import os
from dataclasses import dataclass, field

OK, MISSING, UNKNOWN = "enabled", "missing", "unknown"

NAMESPACES = (
    ("mnt", "container filesystems (every container needs it)"),
    ("pid", "a private process tree (every container needs it)"),
    ("uts", "a container hostname (every container needs it)"),
    ("ipc", "private SysV IPC / POSIX queues (every container needs it)"),
    ("net", "container networking (only --network host would work)"),
    ("user", "user-namespaced (rootless) containers"),
    ("cgroup", "a private /sys/fs/cgroup view inside containers (--cgroupns private)"),
)

CONTROLLERS = (
    ("memory", "-m/--memory, --memory-swap, OOM reporting and memory in stats"),
    ("cpu", "--cpus, --cpu-shares, --cpu-quota"),
    ("cpuset", "--cpuset-cpus, --cpuset-mems"),
    ("pids", "--pids-limit and PIDS in stats"),
    ("blkio", "--blkio-weight, --device-read-bps and friends"),
    ("io", "--blkio-weight, --device-read-bps and friends"),
    ("freezer", "pause / unpause"),
    ("cpuacct", "CPU % in stats"),
    ("devices", "device access rules (--device)"),
)


@dataclass
class Item:
    section: str
    name: str
    status: str
    detail: str = ""
    disables: str = ""
    required: bool = False


@dataclass
class Paths:
    proc: str = "/proc"
    sys: str = "/sys"
    cgroup: str = "/sys/fs/cgroup"
    boot: str = "/boot"
    modules: str = "/lib/modules"
    release: str = field(default_factory=lambda: os.uname().release)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def kernel_config(p: Paths) -> dict[str, str]:
    """CONFIG_X → y/m from /proc/config.gz or /boot/config-<release>; {} if neither exists."""
    text = None
    gz = os.path.join(p.proc, "config.gz")
    if os.path.exists(gz):
        import gzip

        try:
            with gzip.open(gz, "rt") as f:
                text = f.read()
        except OSError:
            text = None
    if text is None:
        text = _read(os.path.join(p.boot, f"config-{p.release}"))
    out = {}
    for line in (text or "").splitlines():
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2:].split()[0]] = "n"
            continue
        key, sep, value = line.partition("=")
        if sep and key.startswith("CONFIG_"):
            out[key] = value
    return out


def module_state(p: Paths, name: str, config_key: str, config: dict) -> tuple[str, str]:
    """(status, how we know) for a kernel driver that may be built in, loaded or loadable."""
    if os.path.isdir(os.path.join(p.sys, "module", name)):
        return OK, "loaded"
    value = config.get(config_key)
    if value == "y":
        return OK, "built-in"
    mdir = os.path.join(p.modules, p.release)
    builtin = _read(os.path.join(mdir, "modules.builtin")) or ""
    if f"/{name}.ko" in builtin:
        return OK, "built-in"
    dep = _read(os.path.join(mdir, "modules.dep")) or ""
    if f"/{name}.ko" in dep:
        return OK, "module, loaded on demand"
    if value == "m":
        return UNKNOWN, f"{config_key}=m but no module found under {mdir}"
    if config:
        return MISSING, f"{config_key} is not set"
    return UNKNOWN, "no kernel config or module list to tell"


def check(p: Paths | None = None) -> list[Item]:
    """The full report, in display order."""
    p = p or Paths()
    config = kernel_config(p)
    items: list[Item] = []

    ns_dir = os.path.join(p.proc, "self", "ns")
    for ns, why in NAMESPACES:
        present = os.path.exists(os.path.join(ns_dir, ns))
        items.append(Item("Namespaces", f"{ns} namespace", OK if present else MISSING, "",
                          why, required=ns in ("mnt", "pid", "uts", "ipc")))
    max_userns = _read(os.path.join(p.proc, "sys", "user", "max_user_namespaces"))
    if max_userns is not None:
        n = int(max_userns.strip() or 0)
        items.append(Item("Namespaces", "user namespaces allowed", OK if n > 0 else MISSING,
                          f"max_user_namespaces={n}", "user-namespaced (rootless) containers"))

    items += _cgroup_items(p)

    filesystems = _read(os.path.join(p.proc, "filesystems")) or ""
    has_overlay = any(line.split()[-1:] == ["overlay"] for line in filesystems.splitlines())
    if has_overlay:
        items.append(Item("Storage", "overlay filesystem", OK, "in /proc/filesystems", required=True))
    else:
        status, how = module_state(p, "overlay", "CONFIG_OVERLAY_FS", config)
        items.append(Item("Storage", "overlay filesystem", status, how,
                          "the overlay2 storage driver: no container can get a rootfs", required=True))

    for name, key, why in (
        ("veth", "CONFIG_VETH", "bridge networking (only --network none/host would work)"),
        ("bridge", "CONFIG_BRIDGE", "the default bridge network and user networks"),
    ):
        status, how = module_state(p, name, key, config)
        items.append(Item("Networking", name, status, how, why))

    status_text = _read(os.path.join(p.proc, "self", "status")) or ""
    fields = dict(line.split(":", 1) for line in status_text.splitlines() if ":" in line)
    if "Seccomp" in fields:
        filt = config.get("CONFIG_SECCOMP_FILTER")
        if filt == "y" or "Seccomp_filters" in fields:
            items.append(Item("Security", "seccomp filters", OK, "Seccomp field in /proc/self/status"))
        elif config:
            items.append(Item("Security", "seccomp filters", MISSING, "CONFIG_SECCOMP_FILTER is not set",
                              "the default seccomp profile (containers run unfiltered)"))
        else:
            items.append(Item("Security", "seccomp filters", UNKNOWN, "seccomp present, filter mode unknown"))
    else:
        items.append(Item("Security", "seccomp filters", MISSING, "no Seccomp field in /proc/self/status",
                          "the default seccomp profile (containers run unfiltered)"))
    if "NoNewPrivs" in fields:
        items.append(Item("Security", "no_new_privs", OK, "NoNewPrivs field in /proc/self/status"))
    return items


def _cgroup_items(p: Paths) -> list[Item]:
    from minibox.cgroups import detect
    from minibox.cgroups.v1 import find_mounts

    kind = detect(p.cgroup)
    items = []
    if kind == "v2":
        ctrls = set((_read(os.path.join(p.cgroup, "cgroup.controllers")) or "").split())
        items.append(Item("Cgroups", "cgroup hierarchy", OK, f"v2, unified; {p.cgroup}", required=True))
        wanted = [c for c in CONTROLLERS if c[0] in ("memory", "cpu", "cpuset", "pids", "io")]
    elif kind == "v1":
        ctrls = set(find_mounts(p.cgroup))
        unified = os.path.join(p.cgroup, "unified", "cgroup.controllers")
        mode = "v1, hybrid: the controller-less cgroup2 at unified/ is ignored" if os.path.exists(
            unified) else "v1, legacy"
        items.append(Item("Cgroups", "cgroup hierarchy", OK, f"{mode}; {p.cgroup}", required=True))
        wanted = [c for c in CONTROLLERS if c[0] != "io"]
    else:
        items.append(Item("Cgroups", "cgroup hierarchy", MISSING, f"nothing mounted at {p.cgroup}",
                          "every resource limit, OOM reporting and stats", required=True))
        return items
    for name, why in wanted:
        items.append(Item("Cgroups", f"{name} controller", OK if name in ctrls else MISSING, "", why,
                          required=name in ("memory", "pids")))
    if kind == "v1" and "blkio" in ctrls:
        blkio = find_mounts(p.cgroup)["blkio"]
        if not os.path.exists(os.path.join(blkio, "blkio.weight")):
            items.append(Item("Cgroups", "blkio weight", MISSING, "no blkio.weight: the IO scheduler has no weights",
                              "--blkio-weight (the --device-*-bps/iops throttles still work)"))
    if kind == "v2":
        # v2 freezes with cgroup.freeze (Linux 5.2+), a core file of every non-root cgroup.
        seen = any(os.path.exists(os.path.join(e.path, "cgroup.freeze")) for e in _subdirs(p.cgroup))
        new_enough = tuple(int(x) for x in p.release.split(".")[:2] if x.isdigit()) >= (5, 2)
        items.append(Item("Cgroups", "freezer (cgroup.freeze)", OK if seen or new_enough else MISSING,
                          "", "pause / unpause"))
    return items


def _subdirs(path):
    try:
        return [e for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def render(items: list[Item]) -> str:
    """The report as text, one section per heading, each missing item with what it disables."""
    lines, section = [], None
    width = max(len(i.name) for i in items) + 1
    for item in items:
        if item.section != section:
            section = item.section
            lines.append(f"{section}:" if not lines else f"\n{section}:")
        detail = f" ({item.detail})" if item.detail else ""
        lines.append(f"  {item.name + ':':<{width}} {item.status}{detail}")
        if item.status != OK and item.disables:
            lines.append(f"  {'':<{width}}   → disables {item.disables}")
    missing = [i for i in items if i.required and i.status == MISSING]
    lines.append("")
    if missing:
        lines.append("Missing required features: " + ", ".join(i.name for i in missing))
    else:
        lines.append("All required kernel features are present.")
    return "\n".join(lines)
