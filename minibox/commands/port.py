"""List the published ports of a container (``docker port``)."""

from minibox.errors import NotFound, UsageError


def configure(parser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("private_port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def main(args) -> int:
    from minibox.engine import records
    from minibox.network.ports import PortMapping

    rec = records.load(args.root, records.resolve(args.root, args.container))
    mappings = [PortMapping.from_dict(d) for d in ((rec.get("network") or {}).get("ports") or ())]
    if args.private_port:
        port, _, proto = args.private_port.partition("/")
        if not port.isdigit():
            raise UsageError(f"invalid port {args.private_port!r}")
        proto = proto or "tcp"
        mappings = [m for m in mappings if m.container_port == int(port) and m.proto == proto]
        if not mappings:
            raise NotFound(f"No public port '{port}/{proto}' published for {args.container}")
        for m in mappings:
            print(f"{m.host_ip or '0.0.0.0'}:{m.host_port}")
        return 0
    for m in sorted(mappings, key=lambda m: (m.container_port, m.proto)):
        print(m.describe())
    return 0
