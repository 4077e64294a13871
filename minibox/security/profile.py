"""Docker seccomp profiles -> the OCI ``linux.seccomp`` a runtime loads.

A docker profile is conditional: entries apply only for some capabilities
(``includes.caps`` / ``excludes.caps``), architectures or kernels, and the
architecture list comes from an ``archMap``. Like dockerd, minibox resolves
all of that once, when the container's spec is written, against the
container's bounding set and this host; the runtime then loads a plain OCI
filter. Pure functions, no syscalls (the host facts are parameters).
"""

import os

from minibox.errors import UsageError

DEFAULT_PROFILE = os.path.join(os.path.dirname(__file__), "default_seccomp.json")

# uname machine -> (docker/Go arch name used in includes.arches, libseccomp arch).
_MACHINES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "i686": ("386", "SCMP_ARCH_X86"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
}

_OCI_KEYS = ("names", "action", "errnoRet", "args")


def host_facts() -> tuple[str, str, tuple[int, int]]:
    """(docker arch, seccomp arch, (kernel major, minor)) of this machine."""
    u = os.uname()
    arch, scmp = _MACHINES.get(u.machine, (u.machine, "SCMP_ARCH_" + u.machine.upper()))
    return arch, scmp, _version(u.release)


def _version(release: str) -> tuple[int, int]:
    parts = release.split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return 0, 0


def load_profile(path: str) -> dict:
    """Read a docker profile file; UsageError names the file and the fault."""
    import json

    try:
        with open(path, "rb") as f:
            profile = json.load(f)
    except OSError as e:
        raise UsageError(f"opening seccomp profile {path}: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"decoding seccomp profile {path}: {e}") from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise UsageError(f"seccomp profile {path}: no defaultAction")
    return profile


def _applies(cond: dict | None, caps: set[str], arch: str, kernel: tuple[int, int],
             include: bool) -> bool:
    """Whether an includes (include=True) or excludes block lets the entry through."""
    if not cond:
        return True
    hit_caps = [c in caps for c in cond.get("caps") or ()]
    hit_arch = [arch == a for a in cond.get("arches") or ()]
    min_kernel = cond.get("minKernel")
    if include:
        # docker: every listed cap is required, the arch must be one listed.
        if hit_caps and not all(hit_caps):
            return False
        if hit_arch and not any(hit_arch):
            return False
        if min_kernel and kernel < _version(min_kernel):
            return False
        return True
    # excludes: any listed cap or arch present, or a kernel at least minKernel, drops it.
    if any(hit_caps) or any(hit_arch):
        return False
    if min_kernel and kernel >= _version(min_kernel):
        return False
    return True


def to_oci(profile: dict, bounding: list[str], facts=None) -> dict:
    """Resolve a docker profile for a container with ``bounding`` capabilities.

    ``facts`` = host_facts() unless given (tests pass their own). The result
    has only OCI keys: defaultAction, defaultErrnoRet, architectures, syscalls.
    """
    arch, scmp_arch, kernel = facts or host_facts()
    caps = set(bounding)
    oci: dict = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        oci["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches: list[str] = []
    for entry in profile.get("archMap") or ():
        if entry.get("architecture") == scmp_arch:
            arches = [scmp_arch, *(entry.get("subArchitectures") or ())]
    if not arches and profile.get("architectures"):
        arches = list(profile["architectures"])
    oci["architectures"] = arches
    if profile.get("flags"):
        oci["flags"] = list(profile["flags"])
    syscalls = []
    for i, entry in enumerate(profile.get("syscalls") or ()):
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
        if not names or "action" not in entry:
            raise UsageError(f"seccomp profile: syscalls[{i}] needs names and action")
        if not _applies(entry.get("includes"), caps, arch, kernel, True):
            continue
        if not _applies(entry.get("excludes"), caps, arch, kernel, False):
            continue
        out = {k: entry[k] for k in _OCI_KEYS if entry.get(k) not in (None, [])}
        out["names"] = list(names)
        syscalls.append(out)
    oci["syscalls"] = syscalls
    return oci
