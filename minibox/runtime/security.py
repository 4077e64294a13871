"""Process confinement applied in the container's init just before execve.

Capabilities, no_new_privs and seccomp, from the OCI spec's ``process``
section and ``linux.seccomp``. The runtime calls, in this order:

``prepare(process, linux)`` - before pivot_root, while the host's files are
  visible: imports what the later steps need and compiles the seccomp filter
  (through an on-disk cache), so the container's init never runs libseccomp.
``apply(process, linux)`` - still uid 0, before setgroups/setresgid/setresuid:
  1. PR_SET_KEEPCAPS, so setresuid() away from uid 0 keeps the permitted set;
  2. the bounding set drops to ``capabilities.bounding`` (needs CAP_SETPCAP,
     which only the still-privileged process has);
  3. the inheritable set, and the ambient set (which survives only while the
     user stays uid 0: setresuid() from 0 clears it, see ``finish``);
  4. no_new_privs when ``process.noNewPrivileges``;
  5. the seccomp filter, last. Loading one without no_new_privs needs
     CAP_SYS_ADMIN, which the process still has here and not after. The filter
     must then allow what the runtime still does before execve (setgroups,
     setresgid, setresuid, reading /proc/self/fd, capset and prctl for
     ``finish``, execve); docker's default allows all of it, and runc has the
     same rule for filters loaded without no_new_privs.
  Effective and permitted are NOT narrowed here: a spec without
  CAP_SETUID/CAP_SETGID (``--cap-drop ALL -u 1000``) would make the switch
  itself fail.
``finish(process, linux)`` - after the uid switch, right before execve:
  effective/permitted/inheritable exactly as the spec says (what the process
  does not hold is left out) and the ambient set raised again, which is the
  only way a non-root user keeps a capability across execve.

Without ``finish`` the result after execve is still docker's: the kernel
recomputes the sets on execve - for uid 0 they become the bounding set (plus
inheritable), for any other uid only the ambient set survives, so ``-u``
gives CapEff 0. ``finish`` adds ambient capabilities for non-root users and
the spec's exact sets up to execve.

``confine(process, linux)`` runs apply, the switch from ``process.user`` and
finish in one call, for a runtime that does not switch users itself.
"""

import os

from minibox.runtime import capabilities as caps

# Where prepare() keeps compiled filters unless told otherwise: per boot
# (the kernel release is part of the key anyway), root-only.
DEFAULT_CACHE_DIR = "/run/minibox/seccomp"


def _masks(process: dict) -> dict[str, int] | None:
    spec = process.get("capabilities")
    if spec is None:
        return None
    out = {}
    for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        # Names the kernel or this table does not know are skipped, as runc does.
        out[key] = caps.mask(n for n in spec.get(key) or () if n in caps.CAP_NUMBERS)
    return out


def prepare(process: dict, linux: dict, cache_dir: str | None = None) -> None:
    """Import and compile now, before pivot_root hides the host's files.

    ``cache_dir``: where compiled filters are kept; default
    ``$MINIBOX_SECCOMP_CACHE`` if set (empty disables the cache), else
    DEFAULT_CACHE_DIR. A cache directory that is not a root-only (0700,
    owned by us) real directory is not used.
    """
    caps.preload()
    filt = (linux or {}).get("seccomp")
    if not filt:
        return
    from minibox.runtime import seccomp

    if cache_dir is None:
        cache_dir = os.environ.get("MINIBOX_SECCOMP_CACHE", DEFAULT_CACHE_DIR)
    seccomp.prepare(filt, cache_dir or None)


def apply(process: dict, linux: dict) -> None:
    """Pre-switch half: keepcaps, bounding, inheritable/ambient, no_new_privs, seccomp.

    Call as uid 0 with full privileges after pivot_root, then do
    setgroups/setresgid/setresuid, then (optionally) ``finish()``, then
    execve. Raises SyscallError (or MiniboxError for a malformed filter).
    """
    masks = _masks(process)
    if masks is not None:
        caps.set_keepcaps(True)
        caps.drop_bounding(masks["bounding"])
        effective, permitted, inheritable = caps.capget()
        inheritable = masks["inheritable"] & (inheritable | permitted) & masks["bounding"]
        caps.capset(effective, permitted, inheritable)
        caps.set_ambient(masks["ambient"] & permitted & inheritable)
    if process.get("noNewPrivileges"):
        caps.set_no_new_privs()
    filt = (linux or {}).get("seccomp")
    if filt:
        from minibox.runtime import seccomp

        seccomp.load(filt)


def finish(process: dict, linux: dict) -> None:
    """Post-switch half: the spec's effective/permitted/inheritable, and the ambient set again.

    A capability the process does not hold cannot be granted; it is left out
    rather than failing the start (a nested runtime, a host whose bounding
    set lacks it).
    """
    masks = _masks(process)
    if masks is None:
        return
    _, have_p, have_i = caps.capget()
    permitted = masks["permitted"] & have_p
    effective = masks["effective"] & permitted
    inheritable = masks["inheritable"] & (have_i | have_p)
    caps.capset(effective, permitted, inheritable)
    caps.set_ambient(masks["ambient"] & permitted & inheritable)


def switch_user(user: dict | None) -> None:
    """setgroups, setresgid, setresuid from an OCI ``process.user`` (uid 0 if absent)."""
    from minibox import syscalls

    user = user or {}
    syscalls.setgroups([int(g) for g in user.get("additionalGids") or ()])
    syscalls.setresgid(int(user.get("gid", 0)))
    syscalls.setresuid(int(user.get("uid", 0)))


def confine(process: dict, linux: dict) -> None:
    """apply(), the uid/gid switch from ``process.user``, finish(): all of it, in order."""
    apply(process, linux)
    switch_user(process.get("user"))
    finish(process, linux)
