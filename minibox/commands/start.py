"""Start one or more stopped containers (``-a``/``-i``: then attach to it, as docker's)."""


def configure(p) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args) -> int:
    import sys

    from minibox.engine import containers, detached, records
    from minibox.errors import MiniboxError, UsageError

    attach = args.attach or args.interactive
    if attach and len(args.containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    failed = 0
    for ref in args.containers:
        try:
            rec = records.load(args.root, records.resolve(args.root, ref))
            if rec["state"]["status"] in ("running", "paused"):
                # docker: starting a running container is a no-op that names it
                if not attach:
                    print(ref)
                    continue
                from minibox.engine import attach as attacher

                return attacher.attach(args.root, rec["id"], stdin=args.interactive)
            if rec["state"].get("needs_cleanup"):
                containers.release_runtime(args.root, rec)
            if attach:
                from minibox.engine import attach as attacher

                # The monitor holds the output until we are connected: nothing is lost.
                detached.start_detached(args.root, rec, attached=True)
                sock = attacher.connect(args.root, rec["id"])
                return attacher.attach(args.root, rec["id"], stdin=args.interactive, sock=sock)
            detached.start_detached(args.root, rec)
            print(ref)
        except MiniboxError as exc:
            print(f"minibox: Error response from daemon: {exc}", file=sys.stderr)
            failed = exc.exit_code
    return 1 if failed and len(args.containers) > 1 else failed
