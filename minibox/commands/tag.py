"""Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""


def configure(parser) -> None:
    parser.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    parser.add_argument("target", metavar="TARGET_IMAGE[:TAG]")


def main(args) -> int:
    from minibox.errors import UsageError
    from minibox.image import reference
    from minibox.image.store import ImageStore

    store = ImageStore(args.root)
    img = store.resolve(args.source)
    ref = reference.parse(args.target)
    if ref.digest:
        raise UsageError(f"tag: {args.target!r}: refusing to create a tag with a digest reference")
    store.tag(img, ref)
    return 0
