"""Network records: ``<root>/network/<name>/network.json`` (+ its leases).

A network is a name, a subnet, a gateway and the bridge device that carries
it. The predefined ``bridge`` network (device ``minibox0``, 10.88.0.0/16) is
written on first use; user networks by ``network create``, which also
creates their bridge and rules so that a bad subnet is refused up front.
Creation and removal run under a host-wide lock because bridges, routes and
iptables rules are host-wide: two minibox roots must not pick one subnet.
"""

import os
import re
import time

from minibox.errors import Conflict, NotFound, UsageError
from minibox.image.fsutil import remove_tree
from minibox.network import ipam

DEFAULT_NETWORK = "bridge"
DEFAULT_DEVICE = "minibox0"
DEFAULT_SUBNET = "10.88.0.0/16"
# Subnets handed to user networks without --subnet: 10.89.0.0/24, 10.89.1.0/24 ...
AUTO_POOL = "10.89.0.0/16"
AUTO_PREFIX = 24
RESERVED = ("none", "host", DEFAULT_NETWORK)
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
HOST_LOCK = "/run/minibox/networks.lock"


def networks_dir(root: str) -> str:
    return os.path.join(root, "network")


def network_dir(root: str, name: str) -> str:
    return os.path.join(networks_dir(root), name)


def leases(root: str, name: str) -> ipam.LeaseStore:
    return ipam.LeaseStore(network_dir(root, name))


def load(root: str, name: str) -> dict:
    """The record of network ``name``; NotFound when there is none."""
    record = ipam.read_json(os.path.join(network_dir(root, name), "network.json"), None)
    if record is None:
        raise NotFound(f"network {name} not found")
    return record


def list_networks(root: str) -> list[dict]:
    try:
        names = sorted(os.listdir(networks_dir(root)))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        record = ipam.read_json(os.path.join(network_dir(root, name), "network.json"), None)
        if record is not None:
            out.append(record)
    return out


def find(root: str, ref: str) -> dict:
    """A network by name, full id or unique id prefix (docker's lookup order)."""
    try:
        return load(root, ref)
    except NotFound:
        pass
    matches = [n for n in list_networks(root) if n["id"].startswith(ref)] if ref else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise Conflict(f"network {ref} is ambiguous ({len(matches)} matches)")
    raise NotFound(f"network {ref} not found")


def _choose_subnet(root: str, requested: str | None):
    import ipaddress

    taken = [ipaddress.IPv4Network(n["subnet"]) for n in list_networks(root)]
    if requested:
        net = ipam.parse_subnet(requested)
        for other in taken:
            if ipaddress.IPv4Network(str(net)).overlaps(other):
                raise Conflict(f"subnet {net} overlaps subnet {other} of another minibox network")
        return net
    from minibox.network import bridge

    for candidate in ipaddress.IPv4Network(AUTO_POOL).subnets(new_prefix=AUTO_PREFIX):
        if any(candidate.overlaps(o) for o in taken):
            continue
        try:
            bridge.check_subnet_free(candidate, "")
        except Conflict:
            continue
        return ipam.parse_subnet(str(candidate))
    raise Conflict(f"no free subnet left in {AUTO_POOL}; pass --subnet")


def create(root: str, name: str, subnet: str | None = None, device: str | None = None,
           predefined: bool = False) -> dict:
    """Create network ``name``: record, bridge, NAT rules. Conflict if it exists.

    ``predefined`` allows the reserved name ``bridge`` (used on first use of
    the default network, and by tests that want their own default bridge).
    """
    from minibox.network import bridge, nat, rtnl

    if not NAME_RE.match(name) or (name in RESERVED and not predefined) or name.startswith("container:"):
        raise UsageError(f"invalid network name {name!r}" + (" (reserved)" if name in RESERVED else ""))
    os.makedirs(networks_dir(root), mode=0o700, exist_ok=True)
    os.makedirs(os.path.dirname(HOST_LOCK), mode=0o700, exist_ok=True)
    with ipam.flocked(HOST_LOCK):
        if os.path.exists(os.path.join(network_dir(root, name), "network.json")):
            raise Conflict(f"network with name {name} already exists")
        net = _choose_subnet(root, subnet)
        net_id = os.urandom(32).hex()
        device = device or ("mbr" + net_id[:12])
        gateway = ipam.gateway_of(net)
        record = {
            "name": name, "id": net_id, "driver": "bridge", "subnet": str(net),
            "gateway": gateway, "bridge": device,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        existed = rtnl.link_exists(device)
        try:
            bridge.ensure_bridge(device, net, gateway)
            nat.enable_forwarding(device)
            nat.add_rules(nat.network_rules(device, str(net)))
            os.makedirs(network_dir(root, name), mode=0o700, exist_ok=True)
            ipam.write_json_atomic(os.path.join(network_dir(root, name), "network.json"), record)
        except BaseException:
            # A bridge that was there before (minibox0 shared by another
            # root) keeps its rules: they are that root's too.
            if not existed:
                _teardown(record)
            remove_tree(network_dir(root, name), ignore_errors=True)
            raise
    return record


def ensure_default(root: str) -> dict:
    """The ``bridge`` network, created with its defaults on first use.

    ``MINIBOX_BRIDGE`` and ``MINIBOX_BRIDGE_SUBNET`` override the device and
    subnet at that moment (dockerd's ``--bridge``/``--bip``): a test suite
    gives its private root a bridge of its own and removes it afterwards
    with ``remove_default(root)``.
    """
    try:
        return load(root, DEFAULT_NETWORK)
    except NotFound:
        pass
    device = os.environ.get("MINIBOX_BRIDGE") or DEFAULT_DEVICE
    subnet = os.environ.get("MINIBOX_BRIDGE_SUBNET") or DEFAULT_SUBNET
    try:
        return create(root, DEFAULT_NETWORK, subnet, device, predefined=True)
    except Conflict:
        # Lost a race with a concurrent first use: the record exists now.
        if os.path.exists(os.path.join(network_dir(root, DEFAULT_NETWORK), "network.json")):
            return load(root, DEFAULT_NETWORK)
        raise


def remove_default(root: str) -> None:
    """Remove the root's ``bridge`` network (device, rules, record) if it has one.

    For discarding a whole root (test suites); containers on it must be gone.
    """
    try:
        remove(root, DEFAULT_NETWORK, force=True)
    except NotFound:
        pass


def _teardown(record: dict) -> None:
    from minibox.network import nat, rtnl

    nat.delete_rules(nat.network_rules(record["bridge"], record["subnet"]))
    rtnl.delete_link(record["bridge"])


def users(root: str, name: str) -> list[str]:
    """Ids of live containers holding a lease on ``name`` (dead ones are not users)."""
    alive = ipam.container_exists(root)
    return [cid for cid in leases(root, name).load() if alive(cid)]


def remove(root: str, ref: str, force: bool = False) -> dict:
    """Remove a network: refused while containers use it or for ``bridge`` (unless ``force``)."""
    record = find(root, ref)
    name = record["name"]
    if name in RESERVED and not force:
        raise Conflict(f"{name} is a pre-defined network and cannot be removed")
    from minibox.network import endpoint

    alive = ipam.container_exists(root)
    # Under the leases lock, so no container can join between the check and
    # the removal (connect re-checks that the network still exists there).
    with ipam.flocked(HOST_LOCK), leases(root, name).locked() as current:
        in_use = [cid for cid in current if alive(cid)]
        if in_use:
            raise Conflict(f"network {name} has active endpoints: {', '.join(c[:12] for c in in_use)}")
        for lease in current.values():
            endpoint.remove_leftovers(lease)
        _teardown(record)
        remove_tree(network_dir(root, name))  # ``current`` is unchanged: nothing is written back
    return record
