"""Inspect changes to files or directories on a container's filesystem."""


def configure(parser) -> None:
    parser.add_argument("container", metavar="CONTAINER")


def main(args) -> int:
    from minibox.engine import records
    from minibox.image.layerdiff import changes
    from minibox.image.store import ImageStore

    rec = records.load(args.root, records.resolve(args.root, args.container))
    store = ImageStore(args.root)
    lowers = list(reversed(store.get(rec["image_id"]).layer_dirs()))
    for kind, path in changes(rec["rootfs"]["upper"], lowers):
        print(f"{kind} {path}")
    return 0
