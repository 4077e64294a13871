"""Create and run a new container from an image.

docker's parsing: options stand before the image; everything after the
image is the command and its arguments.
"""

import argparse
import sys

from minibox.network.flags import add_arguments as add_network_flags

ADD_HELP = False  # -h is --hostname, as in docker


def add_container_flags(p: argparse.ArgumentParser) -> None:
    """The flags ``run`` and ``create`` share (docker's names and meanings)."""
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("--rm", action="store_true", help="Remove the container when it exits")
    p.add_argument("--name", help="Assign a name to the container")
    p.add_argument("-h", "--hostname", help="Container host name")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("--env-file", action="append", default=[], help="Read in a file of environment variables")
    p.add_argument("-w", "--workdir", help="Working directory inside the container")
    p.add_argument("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("--group-add", action="append", default=[], help="Add additional groups to join")
    p.add_argument("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    p.add_argument("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    p.add_argument("-v", "--volume", action="append", default=[], help="Bind mount a volume")
    p.add_argument("--network", "--net", default="bridge",
                   help="Connect a container to a network (bridge, NAME, none, host, container:ID)")
    add_network_flags(p)
    p.add_argument("--init", action="store_true", help="Run an init inside the container")
    p.add_argument("--stop-signal", help="Signal to stop the container")
    p.add_argument("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container")
    p.add_argument("--trace", action="store_true", help="Print each Linux primitive minibox applies")
    p.add_argument("--pull", choices=("missing", "always", "never"), default="missing",
                   help='Pull image before running ("missing", "always", "never")')
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the pull output")
    from minibox.cgroups.flags import add_arguments as add_resource_flags

    add_resource_flags(p)
    from minibox.security_flags import add_arguments as add_security_flags

    add_security_flags(p)
    p.add_argument("image", help="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, help="COMMAND [ARG...]")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--help", action="help", help="Print usage")
    p.add_argument("-d", "--detach", action="store_true", help="Run container in background and print container ID")
    add_container_flags(p)


def trace_printer(enabled: bool):
    if not enabled:
        return None

    def trace(line: str) -> None:
        sys.stderr.write(f"[trace] {line}\n")
        sys.stderr.flush()

    return trace


def main(args) -> int:
    from minibox.engine import containers

    trace = trace_printer(args.trace)
    rec = containers.create(args.root, args, keep_mounted=True, trace=trace)
    if args.detach:
        from minibox.engine import detached

        try:
            detached.start_detached(args.root, rec, trace=trace)
        except BaseException:
            if args.rm:
                containers.remove(args.root, rec["id"], force=True)
            raise
        print(rec["id"])
        return 0
    from minibox.engine import foreground

    try:
        return foreground.run(args.root, rec, interactive=args.interactive, tty=args.tty, trace=trace)
    except BaseException:
        if args.rm:
            containers.remove(args.root, rec["id"], force=True)
        raise
