"""Connect a container's netns to a bridge network, and undo it on every path.

reserve() leases the address and ports (no process needed), attach() gives
the container's init its eth0. reserve() is a plan of steps, each with
its undo; when a step fails the undos of the steps already done run in
reverse, so a failure half-way (a port in use) leaves no rule or lease
behind, and attach() removes its own veth when it fails.
disconnect() and prune_stale() undo from what was saved (the endpoint in the
record, the leases), never from live state only, so they work after the
runtime was SIGKILLed and tolerate every piece being already gone.
"""

import os
import sys

from minibox.errors import MiniboxError, NotFound, UsageError
from minibox.network import ipam, ports, store

VETH_PREFIX = "mbx"
PORTS_LOCK = "/run/minibox/ports.lock"


def host_veth_name(container_id: str) -> str:
    """``mbx`` + 12 hex digits: 15 characters, the most IFNAMSIZ allows."""
    return VETH_PREFIX + container_id[:12]


class Plan:
    """Steps done so far, undone in reverse when something fails."""

    def __init__(self):
        self._undo = []

    def did(self, undo, *args) -> None:
        self._undo.append((undo, args))

    def rollback(self) -> None:
        while self._undo:
            undo, args = self._undo.pop()
            try:
                undo(*args)
            except Exception as exc:  # noqa: BLE001 - keep undoing; report the leftover
                print(f"minibox: cleanup {getattr(undo, '__name__', undo)}: {exc}", file=sys.stderr)


def _mappings(data) -> list[ports.PortMapping]:
    return [ports.PortMapping.from_dict(d) for d in data or ()]


def _port_rules(ip: str, mappings) -> list:
    from minibox.network import nat

    rules = []
    for m in mappings:
        rules.extend(nat.port_rules(ip, m))
    return rules


def _dnat_ports_on_host() -> set[tuple[int, str]]:
    """(port, proto) of every DNAT rule in minibox's chain, whichever root made it."""
    from minibox.network import nat

    taken = set()
    for line in nat.current_state().get("nat", {}).get("rules", ()):
        words = line.split()
        if words[0] != nat.DNAT or "--dport" not in words:
            continue
        proto = words[words.index("-p") + 1] if "-p" in words else "tcp"
        taken.add((int(words[words.index("--dport") + 1]), proto))
    return taken


def _ports_in_root(root: str) -> set[tuple[int, str]]:
    taken = set()
    alive = ipam.container_exists(root)
    for record in store.list_networks(root):
        live = {cid: lease for cid, lease in store.leases(root, record["name"]).load().items() if alive(cid)}
        taken |= ports.leased_ports(live)
    return taken


def remove_leftovers(lease: dict) -> None:
    """Remove the port rules and veth of a lease whose container is gone."""
    from minibox.network import nat, rtnl

    mappings = _mappings(lease.get("ports"))
    if mappings:
        nat.delete_rules(_port_rules(lease["ip"], mappings))
    if lease.get("host_veth"):
        rtnl.delete_link(lease["host_veth"])


def _lock_dir() -> None:
    os.makedirs(os.path.dirname(PORTS_LOCK), mode=0o700, exist_ok=True)


def ensure_network(device: str, net, record: dict) -> tuple[int, int]:
    """The bridge of ``record`` up and forwarding on; returns ``(ifindex, mtu)``.

    A bridge that is up was made by ensure_bridge(), which sets it up last,
    together with the network's iptables rules: then one RTM_GETLINK is the
    whole cost, and the rules are not read again (iptables-save is two more
    processes per run). Only a missing bridge (first use, or after a reboot
    emptied the host's links) takes the slow path through pyroute2 and
    iptables. Rules flushed by hand behind minibox's back come back when
    the bridge is made again (dockerd's, when dockerd restarts).
    """
    from minibox.network import nat, rtnl

    ready = rtnl.bridge_ready(device)
    if ready is None:
        from minibox.network import bridge

        ready = bridge.ensure_bridge(device, net, record["gateway"])
        nat.add_rules(nat.network_rules(device, record["subnet"]))
    nat.enable_forwarding(device)
    return ready


def reserve(root: str, container_id: str, args, exposed=None) -> dict:
    """Lease an address on ``args.network`` for a container not started yet; returns its endpoint.

    The network-wide pieces are made ready, the address (and the published
    ports, with their DNAT rules) leased; the engine does this while the
    container's init sets itself up, and attach() then gives the init its
    eth0. No pid is needed: a lease is keyed by container id. ``exposed``
    is the image's ``ExposedPorts`` (for ``-P``; defaults to
    ``args.exposed_ports``).
    Errors are MiniboxError (exit 125) naming the culprit; nothing is left
    behind then.
    """
    from minibox.network import nat

    name = getattr(args, "network", None) or store.DEFAULT_NETWORK
    if name in ("none", "host") or name.startswith("container:"):
        raise UsageError(f"network mode {name} has no endpoint to connect")
    requested_ip = getattr(args, "ip", None) or None
    if requested_ip and name == store.DEFAULT_NETWORK:
        raise UsageError("user specified IP address is supported on user defined networks only")
    # Parse before touching anything: a malformed -p changes nothing.
    if exposed is None:
        exposed = getattr(args, "exposed_ports", None)
    mappings = ports.mappings_from_args(getattr(args, "publish", None), getattr(args, "publish_all", False), exposed)
    record = store.ensure_default(root) if name == store.DEFAULT_NETWORK else store.find(root, name)
    name = record["name"]  # a network may be named by id prefix too
    net = ipam.parse_subnet(record["subnet"])
    device = record["bridge"]
    veth = host_veth_name(container_id)
    aliases = [a for a in (getattr(args, "name", None), container_id[:12], getattr(args, "hostname", None)) if a]
    aliases = list(dict.fromkeys(aliases))
    lease_store = store.leases(root, name)

    # Network-wide pieces: idempotent and shared, so never undone per container.
    ensure_network(device, net, record)

    plan = Plan()
    try:
        chosen: list[ports.PortMapping] = []

        record_path = os.path.join(store.network_dir(root, name), "network.json")

        def check(_leases):
            # under the leases lock: `network rm` may have won the race
            if not os.path.exists(record_path):
                raise NotFound(f"network {name} not found")
            if mappings:
                taken = _ports_in_root(root) | _dnat_ports_on_host()
                chosen.extend(ports.assign_host_ports(mappings, taken))

        extra = {"name": getattr(args, "name", None) or "", "aliases": aliases, "host_veth": veth, "ports": []}
        if mappings:
            _lock_dir()
            with ipam.flocked(PORTS_LOCK):
                ip, reclaimed = lease_store.allocate(net, container_id, ipam.container_exists(root),
                                                     requested_ip, extra, check)
                plan.did(lease_store.release, container_id)
                port_dicts = [m.to_dict() for m in chosen]
                lease_store.update(container_id, ports=port_dicts)
                rules = _port_rules(ip, chosen)
                nat.add_rules(rules)
                plan.did(nat.delete_rules, rules)
        else:
            ip, reclaimed = lease_store.allocate(net, container_id, ipam.container_exists(root),
                                                 requested_ip, extra, check)
            plan.did(lease_store.release, container_id)
            port_dicts = []
        for lease in reclaimed.values():
            try:
                remove_leftovers(lease)
            except MiniboxError as exc:
                print(f"minibox: cleanup of a stale lease: {exc}", file=sys.stderr)
    except BaseException:
        plan.rollback()
        raise
    endpoint = {
        "network": name, "network_id": record["id"], "bridge": device, "subnet": record["subnet"],
        "ip": ip, "prefixlen": net.prefixlen, "gateway": record["gateway"], "mac": ipam.mac_for(ip),
        "host_veth": veth, "ports": port_dicts, "aliases": aliases,
    }
    if name != store.DEFAULT_NETWORK:
        sync_peer_hosts(root, name, skip=container_id)
    return endpoint


def attach(endpoint: dict, pid: int) -> None:
    """Give the netns of ``pid`` the ``eth0`` of a reserved ``endpoint``.

    A failure leaves no veth behind; the lease stays for disconnect().
    """
    from minibox.network import inside, rtnl

    netns_path = f"/proc/{pid}/ns/net"
    ready = rtnl.bridge_ready(endpoint["bridge"])
    if ready is None:
        raise MiniboxError(f"bridge {endpoint['bridge']} of network {endpoint['network']} is gone")
    bridge_index, mtu = ready
    veth = endpoint["host_veth"]
    rtnl.add_veth(veth, bridge_index, mtu, netns_path, endpoint["mac"])
    try:
        inside.configure(netns_path, endpoint["ip"], endpoint["prefixlen"], endpoint["gateway"])
    except BaseException:
        rtnl.delete_link(veth)
        raise


def disconnect(root: str, container_id: str, endpoint: dict | None) -> None:
    """Undo reserve() and attach(): port rules, veth, lease. Idempotent; every step is tried.

    What to undo comes from the endpoint saved in the record and from the
    lease (whichever knows more), so it works when the container, its netns
    or the runtime are already gone.
    """
    from minibox.network import nat, rtnl

    if not endpoint:
        return
    name = endpoint.get("network") or store.DEFAULT_NETWORK
    errors = []
    lease = None
    lease_store = store.leases(root, name)
    if os.path.isdir(lease_store.dir):
        lease = lease_store.load().get(container_id)
    ip = (lease or {}).get("ip") or endpoint.get("ip")
    port_data = {tuple(sorted(d.items())): d for d in list(endpoint.get("ports") or ()) + list((lease or {}).get("ports") or ())}
    mappings = _mappings(port_data.values())
    steps = []
    if mappings and ip:
        steps.append(lambda: nat.delete_rules(_port_rules(ip, mappings)))
    veth = endpoint.get("host_veth") or (lease or {}).get("host_veth") or host_veth_name(container_id)
    steps.append(lambda: rtnl.remove_veth(veth))
    if os.path.isdir(lease_store.dir):
        steps.append(lambda: lease_store.release(container_id))
    for step in steps:
        try:
            step()
        except (MiniboxError, OSError) as exc:
            errors.append(str(exc))
    if name != store.DEFAULT_NETWORK and os.path.isdir(lease_store.dir):
        try:
            sync_peer_hosts(root, name, skip=container_id)
        except OSError as exc:
            errors.append(str(exc))
    if errors:
        raise MiniboxError(f"disconnect {container_id[:12]} from {name}: {'; '.join(errors)}")


def prune_network(root: str, name: str) -> list[str]:
    """Reclaim the leases of dead containers on ``name`` and remove their leftovers."""
    reclaimed = store.leases(root, name).reclaim(ipam.container_exists(root))
    for lease in reclaimed.values():
        remove_leftovers(lease)
    return list(reclaimed)


def prune_stale(root: str) -> list[str]:
    """For ``rm -f`` / ``system prune``: remove what containers that no longer exist left.

    A container "no longer exists" when its record dir is gone. Its lease,
    published-port rules and host veth (if the netns outlived the crash) are
    removed. Returns the ids that were cleaned up.
    """
    cleaned = []
    for record in store.list_networks(root):
        cleaned.extend(prune_network(root, record["name"]))
    return cleaned


def hosts_entries(root: str, endpoint: dict | None) -> list[tuple[str, str]]:
    """Peers on the endpoint's user network as ``(ip, "name shortid ...")`` for /etc/hosts.

    The default ``bridge`` network has no name resolution (as with docker).
    """
    if not endpoint or endpoint.get("network") in (None, store.DEFAULT_NETWORK):
        return []
    alive = ipam.container_exists(root)
    out = []
    for cid, lease in sorted(store.leases(root, endpoint["network"]).load().items(), key=lambda kv: kv[1]["ip"]):
        if lease["ip"] == endpoint.get("ip") or not alive(cid):
            continue
        out.append((lease["ip"], " ".join(lease.get("aliases") or [cid[:12]])))
    return out


PEERS_BEGIN = "# minibox network peers (managed)"


def render_peers(text: str, entries, stale=None) -> str:
    """``text`` with its managed block of peer lines replaced by ``entries``.

    ``stale(ip)`` says which address lines outside the block are old peer
    lines (the engine writes the first peers itself) and are dropped.
    """
    kept = text.split(PEERS_BEGIN, 1)[0]
    if stale is not None:
        kept = "".join(line for line in kept.splitlines(keepends=True)
                       if not (line.split() and stale(line.split()[0])))
    kept = kept.rstrip("\n")
    lines = [PEERS_BEGIN] + [f"{ip}\t{names if isinstance(names, str) else ' '.join(names)}"
                             for ip, names in entries]
    return (kept + "\n" if kept else "") + "\n".join(lines) + "\n"


def sync_peer_hosts(root: str, name: str, skip: str | None = None) -> None:
    """Rewrite the peer block of the /etc/hosts of every live container on ``name``.

    In place (etcfiles.rewrite_in_place): the file is bind-mounted into the
    running container. Containers whose hosts file does not exist yet (still
    being created) get their peers from hosts_entries() instead. Lines the
    engine wrote for earlier peers (addresses of this subnet other than the
    container's own) are replaced by the managed block.
    """
    from minibox.engine.etcfiles import rewrite_in_place

    alive = ipam.container_exists(root)
    current = store.leases(root, name).load()
    subnet = ipam.parse_subnet(store.load(root, name)["subnet"])
    for cid, lease in current.items():
        if cid == skip or not alive(cid):
            continue
        own = lease["ip"]

        def stale(addr, own=own):
            return addr != own and _in_subnet(addr, subnet)

        def render(text, own=own, stale=stale):
            return render_peers(text, hosts_entries(root, {"network": name, "ip": own}), stale)

        try:
            rewrite_in_place(os.path.join(root, "containers", cid, "hosts"), render)
        except FileNotFoundError:
            continue


def _in_subnet(addr: str, subnet) -> bool:
    try:
        return addr in subnet
    except ValueError:
        return False


def container_netns(root: str, ref: str) -> str:
    """``--network container:REF``: the netns path of that running container.

    REF is a full id, a unique id prefix or a name, read from the engine's
    records; the pid is trusted only if its start time matches the record's.
    """
    from minibox.errors import Conflict

    base = os.path.join(root, "containers")
    try:
        ids = os.listdir(base)
    except FileNotFoundError:
        ids = []
    found = None
    for cid in ids:
        rec = ipam.read_json(os.path.join(base, cid, "container.json"), None)
        if rec is None:
            continue
        if cid == ref or rec.get("name") == ref or rec.get("name") == "/" + ref:
            found = rec
            break
        if cid.startswith(ref):
            if found is not None:
                raise Conflict(f"container {ref} is ambiguous")
            found = rec
    if found is None:
        raise NotFound(f"No such container: {ref}")
    state = found.get("state") or found  # the engine keeps pid/pid_start under "state"
    pid = state.get("pid")
    try:
        with open(f"/proc/{pid}/stat") as fh:
            start = fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, TypeError):
        start = None
    if not pid or start is None or str(state.get("pid_start")) != start:
        raise Conflict(f"cannot join network of a non running container: {ref}")
    return f"/proc/{pid}/ns/net"
