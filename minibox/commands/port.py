"""List the published ports of a container (``docker port``)."""

import json
import os

from minibox.errors import NotFound, UsageError


def configure(parser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("private_port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def _record(root: str, ref: str) -> dict:
    base = os.path.join(root, "containers")
    try:
        ids = sorted(os.listdir(base))
    except FileNotFoundError:
        ids = []
    matches = []
    for cid in ids:
        try:
            with open(os.path.join(base, cid, "container.json")) as fh:
                rec = json.load(fh)
        except (OSError, ValueError):
            continue
        if cid == ref or rec.get("name") in (ref, "/" + ref):
            return rec
        if cid.startswith(ref):
            matches.append(rec)
    if len(matches) == 1:
        return matches[0]
    raise NotFound(f"No such container: {ref}")


def main(args) -> int:
    from minibox.network.ports import PortMapping

    rec = _record(args.root, args.container)
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
