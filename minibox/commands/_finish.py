"""Internal: record a detached container's exit (run by its monitor, not by users)."""


def configure(p) -> None:
    p.add_argument("container")


def main(args) -> int:
    from minibox.engine.detached import finish_from_exit_file

    finish_from_exit_file(args.root, args.container)
    return 0
