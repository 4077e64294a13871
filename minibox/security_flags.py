"""docker's confinement flags -> the OCI spec the runtime executes.

``add_arguments`` adds --cap-add, --cap-drop, --privileged, --security-opt and
--device to a ``run``/``create`` parser; ``apply_to_spec`` writes the result
into ``process.capabilities``, ``process.noNewPrivileges``, ``linux.seccomp``,
``linux.maskedPaths``/``readonlyPaths``, ``linux.devices`` and
``linux.resources.devices``. Everything is decided here, once, when the
spec is built - the runtime only executes it - so flag mistakes surface as a
UsageError (exit 125) before anything is created.
"""

import os
import stat

from minibox.errors import UsageError
from minibox.runtime import capabilities as _caps
# docker's default set (CapEff 00000000a80425fb), defined once with docker's default spec.
from minibox.runtime.spec import DEFAULT_CAPS  # noqa: F401 - re-exported

# /dev entries a privileged container does not get from the host: they are
# per-container mounts (pts, shm, mqueue) or the container's own console.
_SKIP_DEV_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
_SKIP_DEV_FILES = {"console"}


def add_arguments(parser) -> None:
    """The confinement flags of ``docker run`` / ``docker create``."""
    parser.add_argument("--cap-add", action="append", default=[], metavar="CAP",
                        help="add a Linux capability (or ALL)")
    parser.add_argument("--cap-drop", action="append", default=[], metavar="CAP",
                        help="drop a Linux capability (or ALL)")
    parser.add_argument("--privileged", action="store_true",
                        help="all capabilities and devices, no seccomp, no masked paths")
    parser.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                        help="no-new-privileges, seccomp=unconfined|PROFILE.json, "
                             "systempaths=unconfined")
    parser.add_argument("--device", action="append", default=[],
                        metavar="HOST[:CONTAINER[:PERMS]]", help="add a host device")


def all_caps(last_cap: int | None = None) -> list[str]:
    """Every capability the running kernel knows (docker's ALL)."""
    top = _caps.last_cap() if last_cap is None else last_cap
    return list(_caps.CAP_NAMES[: top + 1])


def resolve_caps(adds, drops, privileged=False, last_cap=None) -> list[str]:
    """docker's capability arithmetic, in capability-number order.

    --privileged: all. Otherwise start from DEFAULT_CAPS (all with
    ``--cap-add ALL``), remove the drops (everything with ``--cap-drop ALL``),
    then add the adds - an add wins over a drop of the same name, as in
    docker. Names may be any case, with or without ``CAP_``.
    """
    every = all_caps(last_cap)
    if privileged:
        return every
    adds = [_checked(c, "--cap-add") for c in adds or ()]
    drops = [_checked(c, "--cap-drop") for c in drops or ()]
    base = every if "ALL" in adds else list(DEFAULT_CAPS)
    kept = [] if "ALL" in drops else [c for c in base if c not in drops]
    result = set(kept) | {c for c in adds if c != "ALL"}
    return [c for c in _caps.CAP_NAMES if c in result]


def _checked(name: str, flag: str) -> str:
    norm = _caps.normalize(name)
    if norm == "CAP_ALL":
        return "ALL"
    if norm not in _caps.CAP_NUMBERS:
        raise UsageError(f'invalid {flag}: unknown capability: "{norm}"')
    return norm


class SecurityOpts:
    """Parsed ``--security-opt`` values."""

    def __init__(self):
        self.no_new_privileges = False
        self.seccomp = "default"  # "default" | "unconfined" | a profile path
        self.systempaths_unconfined = False


def parse_security_opts(values) -> SecurityOpts:
    """``key=value`` (or docker's old ``key:value``) options; UsageError on anything else."""
    opts = SecurityOpts()
    for raw in values or ():
        key, sep, value = raw.partition("=")
        if not sep:
            key, sep, value = raw.partition(":")
        if key == "no-new-privileges":
            if not sep:
                opts.no_new_privileges = True
            elif value.lower() in ("true", "1"):
                opts.no_new_privileges = True
            elif value.lower() in ("false", "0"):
                opts.no_new_privileges = False
            else:
                raise UsageError(f"invalid --security-opt {raw!r}: no-new-privileges takes true or false")
        elif key == "seccomp" and value:
            opts.seccomp = {"unconfined": "unconfined", "builtin": "default"}.get(value, value)
        elif key == "systempaths" and value == "unconfined":
            opts.systempaths_unconfined = True
        elif (key, value) in (("apparmor", "unconfined"), ("label", "disable")):
            pass  # minibox applies no LSM profile: already true
        elif key in ("apparmor", "label"):
            raise UsageError(f"invalid --security-opt {raw!r}: minibox has no {key} support")
        else:
            raise UsageError(f"invalid --security-opt {raw!r}")
    return opts


def parse_device(value: str) -> tuple[str, str, str]:
    """``HOST[:CONTAINER[:PERMS]]`` -> (host, container, perms), docker's rules.

    With two fields the second is the permissions when it looks like them
    (``/dev/fuse:rw``), else the container path. PERMS is a non-empty subset
    of ``rwm``; both paths must be absolute.
    """
    parts = value.split(":")
    if len(parts) == 3:
        host, dest, perms = parts
    elif len(parts) == 2:
        host, dest, perms = (parts[0], parts[0], parts[1]) if _valid_perms(parts[1]) \
            else (parts[0], parts[1], "rwm")
    elif len(parts) == 1:
        host, dest, perms = parts[0], parts[0], "rwm"
    else:
        raise UsageError(f"invalid --device {value!r}: too many colons")
    if not _valid_perms(perms):
        raise UsageError(f"invalid --device {value!r}: bad permissions {perms!r} (a subset of rwm)")
    for p in (host, dest):
        if not p.startswith("/"):
            raise UsageError(f"invalid --device {value!r}: {p!r} is not an absolute path")
    return host, os.path.normpath(dest), perms


def _valid_perms(perms: str) -> bool:
    return bool(perms) and set(perms) <= set("rwm") and len(set(perms)) == len(perms)


def _device_entry(path: str, st: os.stat_result) -> dict:
    return {
        "path": path,
        "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def _is_device(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)


def device_entries(host: str, dest: str) -> list[dict]:
    """OCI ``linux.devices`` entries for one host device, or every device under a directory."""
    try:
        st = os.stat(host)
    except OSError as e:
        raise UsageError(f"error gathering device information while adding custom device "
                         f"{host!r}: {e.strerror}") from None
    if _is_device(st):
        return [_device_entry(dest, st)]
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"--device {host!r}: not a device node")
    out = []
    for dirpath, dirnames, filenames in os.walk(host):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                est = os.stat(full)
            except OSError:
                continue
            if _is_device(est):
                out.append(_device_entry(os.path.join(dest, os.path.relpath(full, host)), est))
    return out


def host_devices(root: str = "/dev") -> list[dict]:
    """Every device node under /dev, for --privileged (docker and runc skip the same entries)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DEV_DIRS]
        dirnames.sort()
        for name in sorted(filenames):
            if dirpath == root and name in _SKIP_DEV_FILES:
                continue
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)  # symlinks in /dev point at nodes listed anyway
            except OSError:
                continue
            if _is_device(st):
                out.append(_device_entry(os.path.join("/dev", os.path.relpath(full, root)), st))
    return out


def apply_to_spec(spec: dict, args, last_cap: int | None = None) -> dict:
    """Write the confinement ``args`` asks for into the OCI ``spec`` (in place; also returned).

    ``args`` needs .cap_add, .cap_drop, .privileged, .security_opt, .device
    (missing ones mean docker's defaults). Raises UsageError for a bad value.
    """
    from minibox.security import profile as _profile

    privileged = bool(getattr(args, "privileged", False))
    caps = resolve_caps(getattr(args, "cap_add", None), getattr(args, "cap_drop", None),
                        privileged, last_cap)
    opts = parse_security_opts(getattr(args, "security_opt", None))
    devices = [parse_device(d) for d in getattr(args, "device", None) or ()]

    process = spec.setdefault("process", {})
    linux = spec.setdefault("linux", {})
    # docker sets no inheritable or ambient capabilities.
    process["capabilities"] = {"bounding": list(caps), "effective": list(caps),
                               "permitted": list(caps)}
    process["noNewPrivileges"] = opts.no_new_privileges

    if privileged or opts.seccomp == "unconfined":
        linux.pop("seccomp", None)
    else:
        path = _profile.DEFAULT_PROFILE if opts.seccomp == "default" else opts.seccomp
        linux["seccomp"] = _profile.to_oci(_profile.load_profile(path), caps)

    if privileged or opts.systempaths_unconfined:
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []

    resources = linux.setdefault("resources", {})
    rules = resources.setdefault("devices", [])
    dev_list = linux.setdefault("devices", [])
    if (privileged or devices) and not dev_list:
        # An absent list means "the standard devices" to the runtime; a list
        # replaces them, so it must start with them.
        dev_list.extend(_standard_devices())
    if privileged:
        _writable_sys(spec)
        for entry in host_devices():
            _add_device(dev_list, entry)
        rules.append({"allow": True, "access": "rwm"})
    for host, dest, perms in devices:
        for entry in device_entries(host, dest):
            _add_device(dev_list, entry)
            rules.append({"allow": True, "type": entry["type"], "major": entry["major"],
                          "minor": entry["minor"], "access": perms})
    if not dev_list:
        linux.pop("devices")
    if not rules:
        resources.pop("devices")
    return spec


def _add_device(dev_list: list[dict], entry: dict) -> None:
    """Add ``entry``, replacing one at the same container path."""
    dev_list[:] = [d for d in dev_list if d["path"] != entry["path"]]
    dev_list.append(entry)


def _standard_devices() -> list[dict]:
    from minibox.runtime.mounts import DEFAULT_DEVICES

    return [{"path": p, "type": t, "major": ma, "minor": mi, "fileMode": mo, "uid": 0, "gid": 0}
            for p, t, ma, mi, mo in DEFAULT_DEVICES]


def _writable_sys(spec: dict) -> None:
    """--privileged: /sys and the cgroup mount lose their ``ro`` option, as in docker."""
    for m in spec.get("mounts") or ():
        if m.get("destination") in ("/sys", "/sys/fs/cgroup"):
            opts = [o for o in m.get("options") or () if o != "ro"]
            if "rw" not in opts:
                opts.append("rw")
            m["options"] = opts
