"""``exec``: the process spec for an extra command in a running container, then wait for it."""

import os
import signal

from minibox.engine import containers, options, records
from minibox.errors import InvalidTransition, UsageError
from minibox.runtime import spec as ocispec


def run(root: str, args) -> int:
    cid = records.resolve(root, args.container)
    rec = records.load(root, cid)
    status = rec["state"]["status"]
    if status == "paused":
        raise InvalidTransition(f"container {cid} is paused, unpause the container before exec")
    if status != "running":
        raise InvalidTransition(f"container {cid} is not running")
    spec = ocispec.load(records.container_dir(root, cid))
    process = dict(spec["process"])
    pid = rec["state"]["pid"]
    container_root = f"/proc/{pid}/root"
    if args.user is not None:
        from minibox.runtime.paths import secure_join

        def read(path):
            try:
                with open(secure_join(container_root, path), encoding="utf-8", errors="replace") as f:
                    return f.read()
            except OSError:
                return ""

        process["user"] = options.resolve_user(args.user, read("/etc/passwd"), read("/etc/group"))
    if args.workdir:
        if not args.workdir.startswith("/"):
            raise UsageError(f"the working directory '{args.workdir}' is invalid, it needs to be an absolute path")
        process["cwd"] = args.workdir
    process["env"] = options.merge_env(process.get("env") or [], [], args.env)
    process["args"] = list(args.command)
    process["terminal"] = bool(args.tty)
    cgroup = containers._open_cgroup(rec) if rec.get("cgroup_paths") else None

    from minibox.runtime.exec import exec_process

    trace = None
    if getattr(args, "trace", False):
        from minibox.commands.run import trace_printer

        trace = trace_printer(True)

    if args.detach:
        devnull = os.open("/dev/null", os.O_RDWR)
        helper, _ = exec_process(pid, spec, dict(process, terminal=False), cgroup=cgroup,
                                 stdio=(devnull, devnull, devnull), trace=trace)
        return 0
    stdin = 0 if args.interactive else os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    from minibox.engine import foreground

    winsize = foreground._winsize(0) if args.tty else None
    helper, console = exec_process(pid, spec, process, cgroup=cgroup,
                                   stdio=None if args.tty else (stdin, 1, 2), winsize=winsize,
                                   trace=trace)

    def forward(signum, _frame):
        try:
            os.kill(helper, signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in foreground.FORWARDED}
    try:
        if console is not None:
            foreground._relay_tty(console, helper, args.interactive)
        _, wstatus = os.waitpid(helper, 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    code = os.waitstatus_to_exitcode(wstatus)
    return 128 - code if code < 0 else code
