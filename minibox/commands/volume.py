"""Manage volumes: create, ls, inspect, rm, prune."""


def configure(p) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="COMMAND")
    c = sub.add_parser("create", help="Create a volume")
    c.add_argument("name", nargs="?")
    ls = sub.add_parser("ls", help="List volumes")
    ls.add_argument("-q", "--quiet", action="store_true")
    i = sub.add_parser("inspect", help="Display detailed information on volumes")
    i.add_argument("names", nargs="+")
    r = sub.add_parser("rm", help="Remove volumes")
    r.add_argument("-f", "--force", action="store_true")
    r.add_argument("names", nargs="+")
    sub.add_parser("prune", help="Remove unused anonymous volumes")


def main(args) -> int:
    import json
    import sys

    from minibox.engine import records, volumes
    from minibox.errors import MiniboxError, UsageError

    records.ensure_root(args.root)
    if args.action == "create":
        name = args.name or __import__("os").urandom(32).hex()
        from minibox.engine.options import _VOLUME_NAME

        if not _VOLUME_NAME.fullmatch(name):
            raise UsageError(f'"{name}" includes invalid characters for a local volume name')
        volumes.ensure(args.root, name, anonymous=args.name is None)
        print(name)
        return 0
    if args.action == "ls":
        vols = volumes.list_volumes(args.root)
        if args.quiet:
            print("\n".join(v["Name"] for v in vols) if vols else "", end="\n" if vols else "")
            return 0
        print("DRIVER    VOLUME NAME")
        for v in vols:
            print(f"local     {v['Name']}")
        return 0
    if args.action == "inspect":
        found = [v for v in volumes.list_volumes(args.root) if v["Name"] in args.names]
        print(json.dumps(found, indent=4))
        missing = set(args.names) - {v["Name"] for v in found}
        for name in sorted(missing):
            print(f"minibox: Error: No such volume: {name}", file=sys.stderr)
        return 1 if missing else 0
    if args.action == "rm":
        status = 0
        for name in args.names:
            try:
                volumes.remove(args.root, name, force=args.force)
                print(name)
            except MiniboxError as exc:
                print(f"minibox: Error response from daemon: {exc}", file=sys.stderr)
                status = 1
        return status
    removed = []
    for v in volumes.list_volumes(args.root):
        if v.get("Anonymous") and not volumes.users(args.root, v["Name"]):
            volumes.remove(args.root, v["Name"])
            removed.append(v["Name"])
    if removed:
        print("Deleted Volumes:\n" + "\n".join(removed))
    return 0
