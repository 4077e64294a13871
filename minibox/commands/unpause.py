"""Unpause all processes within one or more containers."""

from minibox.commands.pause import configure  # noqa: F401 - same arguments


def main(args) -> int:
    from minibox.commands.pause import main as pause_main

    return pause_main(args, frozen=False)
