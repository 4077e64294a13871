"""Pause all processes within one or more containers (cgroup freezer)."""


def configure(p) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args, frozen: bool = True) -> int:
    import sys

    from minibox.engine import lifecycle
    from minibox.errors import MiniboxError

    status = 0
    for ref in args.containers:
        try:
            lifecycle.pause(args.root, ref, frozen)
            print(ref)
        except MiniboxError as exc:
            print(f"minibox: Error response from daemon: {exc}", file=sys.stderr)
            status = 1
    return status
