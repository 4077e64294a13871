"""Execute a command in a running container."""

import argparse


def configure(p) -> None:
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("-w", "--workdir", help="Working directory inside the container")
    p.add_argument("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--trace", action="store_true", help="Print each Linux primitive minibox applies")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")


def main(args) -> int:
    from minibox.engine import execute

    if not args.command:
        from minibox.errors import UsageError

        raise UsageError("exec requires at least 2 arguments")
    return execute.run(args.root, args)
