"""Save one or more images to a tar archive (streamed to STDOUT by default)."""


def configure(parser) -> None:
    parser.add_argument("-o", "--output", default=None, help="write to a file instead of STDOUT")
    parser.add_argument("images", nargs="+", metavar="IMAGE")


def main(args) -> int:
    from minibox.image.archive import save
    from minibox.image.store import ImageStore

    save(ImageStore(args.root), args.images, args.output)
    return 0
