"""Create a new image from a container's changes."""


def configure(parser) -> None:
    parser.add_argument("-a", "--author", default="", help='author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    parser.add_argument("-c", "--change", action="append", default=[], help="apply Dockerfile instruction to the image")
    parser.add_argument("-m", "--message", default="", help="commit message")
    parser.add_argument("-p", "--pause", default="true", help="accepted for compatibility (not paused)")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")


def main(args) -> int:
    from minibox.engine import records
    from minibox.image.commit import commit
    from minibox.image.store import ImageStore

    rec = records.load(args.root, records.resolve(args.root, args.container))
    img = commit(ImageStore(args.root), rec, args.reference, changes=args.change,
                 message=args.message, author=args.author)
    print(img.id)
    return 0
