"""Create a new container without starting it; prints its id."""

from minibox.commands.run import ADD_HELP, add_container_flags  # noqa: F401 - ADD_HELP read by cli


def configure(p) -> None:
    p.add_argument("--help", action="help", help="Print usage")
    add_container_flags(p)


def main(args) -> int:
    from minibox.engine import containers

    rec = containers.create(args.root, args)
    print(rec["id"])
    return 0
