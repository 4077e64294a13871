"""Stop one or more running containers (stop signal, then SIGKILL after the timeout)."""


def configure(p) -> None:
    p.add_argument("-t", "--time", type=int, default=None, help="Seconds to wait before killing the container")
    p.add_argument("-s", "--signal", help="Signal to send to the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args) -> int:
    import sys

    from minibox.engine import lifecycle
    from minibox.errors import MiniboxError

    status = 0
    for ref in args.containers:
        try:
            lifecycle.stop(args.root, ref, args.time, args.signal)
            print(ref)
        except MiniboxError as exc:
            print(f"minibox: Error response from daemon: {exc}", file=sys.stderr)
            status = 1
    return status
