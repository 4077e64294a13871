"""Kill one or more running containers (SIGKILL unless -s)."""


def configure(p) -> None:
    p.add_argument("-s", "--signal", default="KILL", help="Signal to send to the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args) -> int:
    import sys

    from minibox.engine import lifecycle
    from minibox.errors import MiniboxError

    sig = lifecycle.parse_signal(args.signal)
    status = 0
    for ref in args.containers:
        try:
            lifecycle.kill(args.root, ref, sig)
            print(ref)
        except MiniboxError as exc:
            print(f"minibox: Error response from daemon: {exc}", file=sys.stderr)
            status = 1
    return status
