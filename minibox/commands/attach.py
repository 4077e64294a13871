"""Attach local standard input, output and error streams to a running container."""


def configure(p) -> None:
    p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    p.add_argument("--sig-proxy", default="true", choices=("true", "false"),
                   help="Proxy all received signals to the process")
    p.add_argument("container", metavar="CONTAINER")


def main(args) -> int:
    from minibox.engine import attach

    return attach.attach(args.root, args.container, stdin=not args.no_stdin,
                         sig_proxy=args.sig_proxy == "true")
