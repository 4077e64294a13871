"""Manage the build cache."""


def configure(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="COMMAND")
    sub.required = True
    prune = sub.add_parser("prune", help="remove build cache")
    prune.add_argument("-a", "--all", action="store_true", help="remove all cache, not only unused")
    prune.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    du = sub.add_parser("du", help="show build cache disk usage")
    du.add_argument("--verbose", action="store_true")


def main(args) -> int:
    from minibox.build.context import human_size
    from minibox.build.prune import disk_usage, prune

    if args.action == "du":
        entries, size = disk_usage(args.root)
        print(f"Total:\t{human_size(size)} in {entries} cache entries")
        return 0
    removed, freed = prune(args.root, all_entries=args.all)
    print(f"Deleted build cache entries: {removed}")
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0
