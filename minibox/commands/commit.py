"""Create a new image from a container's changes."""


def configure(parser) -> None:
    parser.add_argument("-a", "--author", default="", help='author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    parser.add_argument("-c", "--change", action="append", default=[], help="apply Dockerfile instruction to the image")
    parser.add_argument("-m", "--message", default="", help="commit message")
    parser.add_argument("-p", "--pause", default="true", metavar="BOOL",
                        help="pause the container during commit (default true)")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")


def _flag(value: str) -> bool:
    from minibox.errors import UsageError

    lowered = value.lower()
    if lowered in ("true", "1", "t", "yes"):
        return True
    if lowered in ("false", "0", "f", "no"):
        return False
    raise UsageError(f'invalid argument "{value}" for "-p, --pause" flag: expected true or false')


def main(args) -> int:
    from minibox.engine import lifecycle, records
    from minibox.image.commit import commit
    from minibox.image.store import ImageStore

    pause = _flag(args.pause)
    cid = records.resolve(args.root, args.container)
    rec = records.load(args.root, cid)
    # As docker: a running container is frozen while its upper dir is read,
    # so the layer is one moment of it, not files caught half-written.
    frozen_here = pause and rec["state"]["status"] == "running"
    if frozen_here:
        lifecycle.pause(args.root, cid, True)
    try:
        img = commit(ImageStore(args.root), rec, args.reference, changes=args.change,
                     message=args.message, author=args.author)
    finally:
        if frozen_here:
            lifecycle.pause(args.root, cid, False)
    print(img.id)
    return 0
