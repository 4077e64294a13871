"""Process confinement applied in the container's init just before execve.

Capabilities, no_new_privs and seccomp, from the OCI spec's ``process``
section and ``linux.seccomp``. The work is split around the uid/gid switch
because the kernel forces an order:

``apply(process, linux)`` - still uid 0, before setgroups/setresgid/setresuid:
  1. PR_SET_KEEPCAPS, so setresuid() away from uid 0 keeps the permitted set
     (the kernel would clear it, and with it any ambient capability to come);
  2. drop the bounding set to ``capabilities.bounding`` (needs CAP_SETPCAP,
     which only the still-privileged process has);
  3. no_new_privs when ``process.noNewPrivileges``;
  4. without no_new_privs, load the seccomp filter now: loading a filter
     without no_new_privs needs CAP_SYS_ADMIN, which the container usually
     lacks afterwards. The filter must then allow what is left to do
     (setgroups, setresgid, setresuid, capset, prctl, execve) - docker's
     default does, and runc has the same rule.
``finish(process, linux)`` - after the uid switch, right before execve:
  5. capset effective/permitted/inheritable as the spec says. Not earlier:
     a spec without CAP_SETUID/CAP_SETGID (``--cap-drop ALL -u 1000``) would
     make the switch itself fail;
  6. the ambient set (setresuid() from 0 clears it, so it can only be raised
     after the switch);
  7. with no_new_privs, load the seccomp filter last, so it only has to
     allow execve (runc's order).

``confine(process, linux)`` does apply, the switch from ``process.user`` and
finish in one call for a runtime that does not switch users itself.

After execve the kernel recomputes the sets: for uid 0 they become the
bounding set (plus inheritable), for any other uid only the ambient set
survives - docker's behaviour for ``-u``: CapEff 0 unless ambient.
"""

from minibox.runtime import capabilities as caps


def _masks(process: dict) -> dict[str, int] | None:
    spec = process.get("capabilities")
    if spec is None:
        return None
    out = {}
    for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        # Names the kernel or this table does not know are skipped, as runc does.
        out[key] = caps.mask(n for n in spec.get(key) or () if n in caps.CAP_NUMBERS)
    return out


def apply(process: dict, linux: dict) -> None:
    """Pre-switch half: keepcaps, bounding set, no_new_privs, seccomp (without NNP).

    Call as uid 0 with full privileges after pivot_root, then do
    setgroups/setresgid/setresuid, then ``finish()``, then execve.
    Raises SyscallError (or MiniboxError for a malformed filter).
    """
    masks = _masks(process)
    if masks is not None:
        caps.set_keepcaps(True)
        caps.drop_bounding(masks["bounding"])
    nnp = bool(process.get("noNewPrivileges"))
    if nnp:
        caps.set_no_new_privs()
    filt = (linux or {}).get("seccomp")
    if filt and not nnp:
        from minibox.runtime import seccomp

        seccomp.load(filt)


def finish(process: dict, linux: dict) -> None:
    """Post-switch half: effective/permitted/inheritable, ambient, seccomp (with NNP).

    A capability the runtime itself does not hold cannot be granted; it is
    left out rather than failing the start (a nested runtime, a host whose
    bounding set lacks it).
    """
    masks = _masks(process)
    if masks is not None:
        _, have_p, have_i = caps.capget()
        permitted = masks["permitted"] & have_p
        effective = masks["effective"] & permitted
        inheritable = masks["inheritable"] & (have_i | have_p)
        caps.capset(effective, permitted, inheritable)
        caps.set_ambient(masks["ambient"] & permitted & inheritable)
    filt = (linux or {}).get("seccomp")
    if filt and process.get("noNewPrivileges"):
        from minibox.runtime import seccomp

        seccomp.load(filt)


def switch_user(user: dict | None) -> None:
    """setgroups, setresgid, setresuid from an OCI ``process.user`` (uid 0 if absent)."""
    from minibox import syscalls

    user = user or {}
    gid = int(user.get("gid", 0))
    syscalls.setgroups([int(g) for g in user.get("additionalGids") or ()])
    syscalls.setresgid(gid)
    syscalls.setresuid(int(user.get("uid", 0)))


def confine(process: dict, linux: dict) -> None:
    """apply(), the uid/gid switch from ``process.user``, finish(): all of it, in order."""
    apply(process, linux)
    switch_user(process.get("user"))
    finish(process, linux)
