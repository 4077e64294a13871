"""Restart one or more containers (stop, then start detached)."""


def configure(p) -> None:
    p.add_argument("-t", "--time", type=int, default=None, help="Seconds to wait before killing the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def main(args) -> int:
    import sys

    from minibox.engine import containers, detached, lifecycle, records
    from minibox.errors import MiniboxError

    status = 0
    for ref in args.containers:
        try:
            cid = lifecycle.stop(args.root, ref, args.time)
            rec = records.load(args.root, cid)
            if rec["state"].get("needs_cleanup"):
                containers.release_runtime(args.root, rec)
            detached.start_detached(args.root, rec)
            print(ref)
        except MiniboxError as exc:
            print(f"minibox: Error response from daemon: {exc}", file=sys.stderr)
            status = 1
    return status
