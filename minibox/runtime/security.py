"""Process confinement applied in the container's init just before execve.

Capabilities, no_new_privs and seccomp, from the OCI spec's ``process``
section. Called last so nothing after it needs the privileges it drops.
"""


def apply(process: dict, linux: dict) -> None:
    """Apply ``process.capabilities``, ``process.noNewPrivileges`` and ``linux.seccomp``.

    Runs in the container's init after pivot_root and the uid/gid switch
    preparation, right before execve. Raises SyscallError on failure.
    """
    # Filled in by the security work (issue 8): capabilities, no_new_privs, seccomp.
    return None
