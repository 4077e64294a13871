"""Manage images (image ls|pull|rm|tag|history|inspect|load|save|import|prune)."""

import importlib

_ALIASES = {"ls": "images", "list": "images", "rm": "rmi", "remove": "rmi", "import": "import_"}
_SUBS = ("ls", "list", "pull", "rm", "remove", "tag", "history", "load", "save", "import", "prune", "inspect")


def configure(parser) -> None:
    from minibox.cli import Parser

    sub = parser.add_subparsers(dest="sub", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in _SUBS:
        p = sub.add_parser(name)
        if name == "prune":
            p.add_argument("-a", "--all", action="store_true", help="remove all images no container uses")
            p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
        elif name == "inspect":
            p.add_argument("images", nargs="+", metavar="IMAGE")
        else:
            importlib.import_module(f"minibox.commands.{_ALIASES.get(name, name)}").configure(p)


def main(args) -> int:
    if args.sub == "prune":
        return prune(args)
    if args.sub == "inspect":
        return inspect(args)
    return importlib.import_module(f"minibox.commands.{_ALIASES.get(args.sub, args.sub)}").main(args)


def prune(args) -> int:
    from minibox.image import humanize
    from minibox.image.store import ImageStore

    lines, reclaimed = ImageStore(args.root).prune(all_images=args.all)
    if lines:
        print("Deleted Images:")
        for line in lines:
            print(line)
        print()
    print(f"Total reclaimed space: {humanize.size(reclaimed)}")
    return 0


def inspect(args) -> int:
    import json
    import sys

    from minibox.errors import MiniboxError
    from minibox.image.store import ImageStore

    store = ImageStore(args.root)
    found, status = [], 0
    for name in args.images:
        try:
            found.append(store.inspect(store.resolve(name)))
        except MiniboxError as exc:
            print(f"minibox: {exc}", file=sys.stderr)
            status = exc.exit_code
    print(json.dumps(found, indent=4))
    return status
