"""Container networking: bridge networks, veth pairs, IPAM, NAT and published ports.

This package's ``__init__`` stays nearly empty on purpose: ``flags`` is
imported by every ``run`` (even ``--network none``), so nothing here may pull
in pyroute2, ipaddress or json. The functions below import their modules on
call. Only the bridge driver exists; ``none`` and ``host`` never come here,
and ``container:ID`` only needs ``container_netns()``.
"""


def reserve(root: str, container_id: str, args, exposed=None) -> dict:
    """Lease an address (and published ports) on ``args.network``; returns the endpoint dict.

    Keys: network, network_id, bridge, subnet, ip, prefixlen, gateway, mac,
    host_veth, ports (list of {container_port, host_port, host_ip, proto}),
    aliases. ``exposed`` is the image's ExposedPorts dict, used by ``-P``.
    Needs no process (a lease is keyed by container id); attach() follows.
    """
    from minibox.network import endpoint

    return endpoint.reserve(root, container_id, args, exposed)


def attach(endpoint: dict, pid: int) -> None:
    """Give the netns of ``pid`` the eth0 of a reserved endpoint (veth, address, route)."""
    from minibox.network import endpoint as _endpoint

    _endpoint.attach(endpoint, pid)


def disconnect(root: str, container_id: str, endpoint: dict | None) -> None:
    """Remove the port rules, veth and lease of ``endpoint``; idempotent."""
    from minibox.network import endpoint as _endpoint

    _endpoint.disconnect(root, container_id, endpoint)


def hosts_entries(root: str, endpoint: dict | None) -> list[tuple[str, str]]:
    """(ip, "name shortid") of the container's peers on its user network, for /etc/hosts.

    Peers that join later are added to the running containers' hosts files
    (in place, under a managed marker) by the network package itself.
    """
    from minibox.network import endpoint as _endpoint

    return _endpoint.hosts_entries(root, endpoint)


def prune_stale(root: str) -> list[str]:
    """Remove leases, port rules and veths of containers whose record is gone."""
    from minibox.network import endpoint

    return endpoint.prune_stale(root)


def container_netns(root: str, ref: str) -> str:
    """``/proc/<pid>/ns/net`` of the running container ``ref`` (``--network container:REF``)."""
    from minibox.network import endpoint

    return endpoint.container_netns(root, ref)
