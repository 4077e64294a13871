"""Remove one or more containers."""


def configure(p) -> None:
    p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container (uses SIGKILL)")
    p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes associated with the container")
    p.add_argument("--trace", action="store_true", help="Print each Linux primitive minibox undoes")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args) -> int:
    import sys

    from minibox.commands.run import trace_printer
    from minibox.engine import containers
    from minibox.errors import MiniboxError

    trace = trace_printer(getattr(args, "trace", False))

    status = 0
    for ref in args.containers:
        try:
            containers.remove(args.root, ref, force=args.force, volumes=args.volumes, trace=trace)
            print(ref)
        except MiniboxError as exc:
            print(f"minibox: Error response from daemon: {exc}", file=sys.stderr)
            status = 1
    return status
