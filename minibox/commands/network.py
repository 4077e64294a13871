"""Manage networks: create, ls, rm, inspect."""

import json


def configure(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="COMMAND")
    sub.required = True
    create = sub.add_parser("create", help="create a bridge network")
    create.add_argument("--subnet", default=None, metavar="CIDR", help="IPv4 subnet, e.g. 10.89.7.0/24")
    create.add_argument("-d", "--driver", default="bridge", help="only 'bridge' is supported")
    create.add_argument("name", metavar="NAME")
    ls = sub.add_parser("ls", aliases=["list"], help="list networks")
    ls.add_argument("-q", "--quiet", action="store_true", help="only show network ids")
    rm = sub.add_parser("rm", aliases=["remove"], help="remove networks")
    rm.add_argument("names", nargs="+", metavar="NETWORK")
    inspect = sub.add_parser("inspect", help="show networks as JSON")
    inspect.add_argument("names", nargs="+", metavar="NETWORK")
    sub.add_parser("prune", help="remove leftovers of containers that are gone")


def _create(args) -> int:
    from minibox.errors import UsageError
    from minibox.network import store

    if args.driver != "bridge":
        raise UsageError(f"network driver {args.driver} is not supported (only bridge)")
    record = store.create(args.root, args.name, args.subnet)
    print(record["id"])
    return 0


def _ls(args) -> int:
    from minibox.network import store

    networks = store.list_networks(args.root)
    if not any(n["name"] == store.DEFAULT_NETWORK for n in networks):
        networks.insert(0, {"id": "", "name": store.DEFAULT_NETWORK, "driver": "bridge", "subnet": store.DEFAULT_SUBNET})
    if args.quiet:
        for n in networks:
            print(n["id"][:12])
        return 0
    print(f"{'NETWORK ID':<14}{'NAME':<20}{'DRIVER':<10}SUBNET")
    for n in networks:
        print(f"{n['id'][:12]:<14}{n['name']:<20}{n['driver']:<10}{n['subnet']}")
    return 0


def _rm(args) -> int:
    from minibox.errors import MiniboxError
    from minibox.network import store

    failed = None
    for ref in args.names:
        try:
            store.remove(args.root, ref)
            print(ref)
        except MiniboxError as exc:
            failed = exc
            if len(args.names) > 1:
                import sys

                print(f"minibox: {exc}", file=sys.stderr)
    if failed is not None and len(args.names) == 1:
        raise failed
    return 1 if failed else 0


def _inspect(args) -> int:
    from minibox.errors import NotFound
    from minibox.network import store
    from minibox.network.ipam import mac_for

    out = []
    for ref in args.names:
        if ref == store.DEFAULT_NETWORK:
            record = store.ensure_default(args.root)
        else:
            record = store.find(args.root, ref)
        alive = store.users(args.root, record["name"])
        leases = store.leases(args.root, record["name"]).load()
        out.append({
            "Name": record["name"], "Id": record["id"], "Created": record["created"],
            "Driver": record["driver"],
            "IPAM": {"Driver": "default", "Config": [{"Subnet": record["subnet"], "Gateway": record["gateway"]}]},
            "Options": {"com.docker.network.bridge.name": record["bridge"]},
            "Containers": {cid: {"Name": leases[cid].get("name", ""),
                                 "IPv4Address": f"{leases[cid]['ip']}/{record['subnet'].split('/')[1]}",
                                 "MacAddress": mac_for(leases[cid]["ip"])}
                           for cid in alive},
        })
    if not out:
        raise NotFound("no network given")
    print(json.dumps(out, indent=4))
    return 0


def _prune(args) -> int:
    from minibox.network import prune_stale

    for cid in prune_stale(args.root):
        print(cid)
    return 0


def main(args) -> int:
    action = {"create": _create, "ls": _ls, "list": _ls, "rm": _rm, "remove": _rm,
              "inspect": _inspect, "prune": _prune}[args.action]
    return action(args)
