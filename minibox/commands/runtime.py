"""The low-level runtime alone, like runc: run, state, kill, delete, list of an OCI bundle.

``minibox runtime run -b BUNDLE ID`` executes a runtime-spec bundle (the
``config.json`` and its rootfs) with no image store, engine or network
involved, so minibox's runtime can be compared with runc on the very same
bundle.
"""

import json
import os
import signal


def configure(p) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="Create and run a container from a bundle, wait for it")
    run.add_argument("-b", "--bundle", default=".", help="Path to the bundle (default: .)")
    run.add_argument("id")
    st = sub.add_parser("state", help="Print the OCI state of a container")
    st.add_argument("id")
    k = sub.add_parser("kill", help="Send a signal to a container's init")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = sub.add_parser("delete", help="Delete a stopped container (-f: kill it first)")
    d.add_argument("-f", "--force", action="store_true")
    d.add_argument("id")
    sub.add_parser("list", help="List the containers")


def main(args) -> int:
    from minibox.runtime import state as rstate

    if args.action == "run":
        return _run(args.root, os.path.abspath(args.bundle), args.id)
    if args.action == "state":
        print(json.dumps(rstate.public(rstate.load(args.root, args.id)), indent=2))
        return 0
    if args.action == "kill":
        from minibox.engine.lifecycle import parse_signal
        from minibox.errors import InvalidTransition

        st = rstate.load(args.root, args.id)
        if st["status"] == "stopped":
            raise InvalidTransition(f"container not running: {args.id}")
        os.kill(st["pid"], parse_signal(args.signal))
        return 0
    if args.action == "delete":
        return _delete(args.root, args.id, args.force)
    print("ID\tPID\tSTATUS\tBUNDLE")
    for cid in rstate.list_ids(args.root):
        st = rstate.load(args.root, cid)
        print(f"{cid}\t{st['pid'] if st['status'] != 'stopped' else 0}\t{st['status']}\t{st['bundle']}")
    return 0


def _run(root: str, bundle: str, cid: str) -> int:
    from minibox.runtime import process, spec as ocispec, state as rstate
    from minibox.runtime.procfs import pid_start_time

    spec = ocispec.load(bundle)
    sdir = rstate.create_dir(root, cid)
    init = None
    reaped = False
    try:
        init = process.create(spec, bundle)
        st = {"ociVersion": spec.get("ociVersion", "1.0.2"), "id": cid, "status": "created",
              "pid": init.pid, "pid_start": pid_start_time(init.pid), "bundle": bundle,
              "cgroup_paths": init.cgroup.paths() if init.cgroup else {}}
        rstate.save(root, st)
        winsize = None
        if (spec.get("process") or {}).get("terminal"):
            from minibox.engine.foreground import _winsize

            winsize = _winsize(0)
        init.start(winsize)
        st["status"] = "running"
        rstate.save(root, st)
        forward = lambda signum, _frame: os.kill(init.pid, signum)  # noqa: E731
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, forward)
        if init.console_fd is not None:
            from minibox.engine.foreground import _relay_tty

            _relay_tty(init.console_fd, init.pid, True)
        _, status = os.waitpid(init.pid, 0)
        reaped = True
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code
    finally:
        if init is not None:
            if not reaped:
                init.abort()
            if init.cgroup is not None:
                init.cgroup.destroy()
        import shutil

        shutil.rmtree(sdir, ignore_errors=True)


def _delete(root: str, cid: str, force: bool) -> int:
    import shutil

    from minibox.errors import InvalidTransition
    from minibox.runtime import state as rstate

    st = rstate.load(root, cid)
    if st["status"] != "stopped":
        if not force:
            raise InvalidTransition(f"cannot delete container {cid} that is not stopped: {st['status']}")
        os.kill(st["pid"], signal.SIGKILL)
    if st.get("cgroup_paths"):
        from minibox.cgroups import open_driver

        open_driver().open(st["cgroup_paths"]).destroy()
    shutil.rmtree(rstate.state_dir(root, cid), ignore_errors=True)
    return 0
