"""Load an image from a tar archive (docker save) or an OCI layout, or STDIN."""


def configure(parser) -> None:
    parser.add_argument("-i", "--input", default="-", help="read from a tar archive file or OCI layout dir")
    parser.add_argument("-q", "--quiet", action="store_true", help="suppress the load output")
    parser.add_argument("--platform", default=None, help="platform to load from a multi-platform OCI index")


def main(args) -> int:
    import sys

    from minibox.errors import UsageError
    from minibox.image.archive import load
    from minibox.image.store import ImageStore

    if args.input == "-" and sys.stdin.isatty():
        raise UsageError("requested load from stdin, but stdin is empty")
    load(ImageStore(args.root), args.input, quiet=args.quiet, platform=args.platform)
    return 0
