"""Import the contents from a tarball to create a filesystem image."""

from minibox.errors import UsageError


def configure(parser) -> None:
    parser.add_argument("-c", "--change", action="append", default=[], metavar="CHANGE",
                        help="apply a Dockerfile instruction to the image (CMD, ENV, ...)")
    parser.add_argument("-m", "--message", default=None, help="commit message for the imported image")
    parser.add_argument("--platform", default=None, help="accepted for compatibility (the host's is used)")
    parser.add_argument("file", metavar="FILE|-")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")


def main(args) -> int:
    from minibox.image import reference
    from minibox.image.store import ImageStore

    if args.reference:
        ref = reference.parse(args.reference)
        if ref.digest:
            raise UsageError(f"import: {args.reference!r}: a digest cannot be used as a tag")
    img = ImageStore(args.root).import_tarball(args.file, args.reference, args.change, args.message)
    print(img.id)
    return 0
