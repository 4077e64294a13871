"""List images."""

from minibox.image import humanize


def configure(parser) -> None:
    parser.add_argument("-a", "--all", action="store_true", help="show all images (default hides intermediate images)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    parser.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    parser.add_argument("--digests", action="store_true", help="show digests")
    parser.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")


def _rows(store, args):
    from minibox.image import reference

    want_repo = want_tag = None
    if args.repository:
        if ":" in args.repository.rsplit("/", 1)[-1]:
            r = reference.parse(args.repository)
            want_repo, want_tag = r.familiar_name, r.tag
        else:
            want_repo = reference.parse(args.repository).familiar_name
    for img in store.images():
        tags = img.repo_tags or []
        if not tags:
            if want_repo:
                continue
            # Untagged images: docker shows <none> for what is left by rmi/re-tag.
            digests = img.repo_digests
            repo = digests[0].split("@")[0] if digests else "<none>"
            yield img, repo, "<none>", digests[0].split("@")[1] if digests else "<none>"
            continue
        for t in tags:
            repo, _, tag = t.rpartition(":")
            if want_repo and (repo != want_repo or (want_tag and tag != want_tag)):
                continue
            dig = next((d.split("@")[1] for d in img.repo_digests if d.startswith(repo + "@")), "<none>")
            yield img, repo, tag, dig


def main(args) -> int:
    from minibox.image.store import ImageStore

    store = ImageStore(args.root)
    rows = list(_rows(store, args))
    if args.quiet:
        seen = set()
        for img, *_ in rows:
            shown = img.id if args.no_trunc else img.short_id
            if shown not in seen:
                seen.add(shown)
                print(shown)
        return 0
    head = ["REPOSITORY", "TAG"] + (["DIGEST"] if args.digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    table = [head]
    for img, repo, tag, dig in rows:
        row = [repo, tag] + ([dig] if args.digests else [])
        row += [img.id if args.no_trunc else img.short_id, humanize.ago(img.created), humanize.size(img.size)]
        table.append(row)
    print(humanize.table(table), end="")
    return 0
