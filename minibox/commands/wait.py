"""Block until one or more containers stop, then print their exit codes."""


def configure(p) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args) -> int:
    import sys

    from minibox.engine import lifecycle, records
    from minibox.errors import MiniboxError

    status = 0
    for ref in args.containers:
        try:
            rec = lifecycle.wait_exit(args.root, records.resolve(args.root, ref))
            print(rec["state"]["exit_code"])
        except MiniboxError as exc:
            print(f"minibox: Error response from daemon: {exc}", file=sys.stderr)
            status = 1
    return status
