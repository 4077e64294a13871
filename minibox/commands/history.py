"""Show the history of an image."""


def configure(parser) -> None:
    parser.add_argument("-H", "--human", default="true", help="print sizes and dates in human readable format")
    parser.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    parser.add_argument("image", metavar="IMAGE")


def rows(store, img) -> list[dict]:
    """One row per history entry, newest first; entries that made a layer get its size."""
    diff_ids = list(img.diff_ids)
    history = img.config.get("history") or [{} for _ in diff_ids]
    out = []
    i = 0
    for h in history:
        size = 0
        if not h.get("empty_layer") and i < len(diff_ids):
            size = store.layer_info(diff_ids[i]).get("size", 0)
            i += 1
        out.append({"created": h.get("created", ""), "created_by": h.get("created_by", ""),
                    "comment": h.get("comment", ""), "size": size})
    out.reverse()
    return out


def main(args) -> int:
    from minibox.image import humanize
    from minibox.image.store import ImageStore

    store = ImageStore(args.root)
    img = store.resolve(args.image)
    human = args.human.lower() not in ("false", "0", "no")
    table = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for n, r in enumerate(rows(store, img)):
        ident = (img.id if args.no_trunc else img.short_id) if n == 0 else "<missing>"
        if args.quiet:
            print(ident)
            continue
        by = r["created_by"].replace("\n", " ").replace("\t", " ")
        if not args.no_trunc and len(by) > 45:
            by = by[:44] + "…"
        created = humanize.ago(r["created"]) if human else r["created"]
        size = humanize.size(r["size"]) if human else str(r["size"])
        table.append([ident, created, by, size, r["comment"]])
    if not args.quiet:
        print(humanize.table(table), end="")
    return 0
