"""``--trace`` lines for what the runtime does that is not one obvious call.

Imported only when tracing: an untraced ``run`` never loads this module.
"""

import os

_NS_FLAG_NAMES = {"pid": "CLONE_NEWPID", "mount": "CLONE_NEWNS", "uts": "CLONE_NEWUTS",
                  "ipc": "CLONE_NEWIPC", "network": "CLONE_NEWNET", "cgroup": "CLONE_NEWCGROUP",
                  "user": "CLONE_NEWUSER"}


def namespaces(trace, namespaces: dict) -> None:
    """The namespaces, in the order the parent and the child create them."""
    if "pid" in namespaces and not namespaces["pid"]:
        trace("unshare(CLONE_NEWPID) + fork: the child is PID 1 of a new PID namespace")
    child = [_NS_FLAG_NAMES.get(t, t) for t, p in namespaces.items()
             if not p and t not in ("pid", "cgroup", "user")]
    if child:
        trace(f"unshare({' | '.join(child)}) in the child")
    for t, p in namespaces.items():
        if p:
            trace(f"setns {t} {p}")
    if "cgroup" in namespaces and not namespaces["cgroup"]:
        trace("unshare(CLONE_NEWCGROUP) in the child, after it joined its cgroup")


def keep_stderr() -> None:
    """Keep the init's trace lines on the user's stderr whatever stdio the container gets.

    The trace printer writes to ``sys.stderr``; point it at a dup of fd 2
    taken now, before fd 2 becomes the container's stderr (a pipe to the log,
    a pty). The dup is close-on-exec, so the container never sees it.
    """
    import sys

    sys.stderr = open(os.dup(2), "w", buffering=1, closefd=True)


def security(trace, process: dict, linux: dict) -> None:
    """What security.apply() is about to do: capabilities dropped, no_new_privs, seccomp size."""
    from minibox.runtime import capabilities as caps

    wanted = (process.get("capabilities") or {}).get("bounding")
    if wanted is not None:
        keep = caps.mask(n for n in wanted if n in caps.CAP_NUMBERS)
        dropped = caps.names(caps.bounding() & ~keep)
        trace(f"capabilities: drop {len(dropped)} from the bounding set: {' '.join(dropped) or '-'}")
        trace(f"capabilities: keep {' '.join(caps.names(keep)) or '-'}")
    if process.get("noNewPrivileges"):
        trace("prctl(PR_SET_NO_NEW_PRIVS, 1)")
    if linux.get("seccomp"):
        from minibox.runtime import seccomp

        prepared = seccomp._prepared
        size = len(prepared[1]) // 8 if prepared else 0
        trace(f"seccomp: load a BPF filter of {size} instructions "
              f"(default {linux['seccomp'].get('defaultAction')}, "
              f"{sum(len(r.get('names') or []) for r in linux['seccomp'].get('syscalls') or [])} syscall rules)")
