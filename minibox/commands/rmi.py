"""Remove one or more images."""


def configure(parser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="force removal of the image")
    parser.add_argument("--no-prune", action="store_true", help="accepted for compatibility")
    parser.add_argument("images", nargs="+", metavar="IMAGE")


def main(args) -> int:
    import sys

    from minibox.errors import MiniboxError
    from minibox.image.store import ImageStore

    store = ImageStore(args.root)
    status = 0
    for name in args.images:
        try:
            for line in store.remove(name, force=args.force):
                print(line)
        except MiniboxError as exc:
            # docker goes on with the other images and fails at the end.
            print(f"minibox: {exc}", file=sys.stderr)
            status = exc.exit_code
    return status
