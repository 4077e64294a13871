"""-p/-P parsing (pure) and host-port choice (binds sockets on 127.0.0.1 only)."""

import socket

import pytest

from minibox.errors import Conflict, UsageError
from minibox.network.ports import (
    PortMapping,
    assign_host_ports,
    exposed_mappings,
    leased_ports,
    mappings_from_args,
    parse_publish,
)


@pytest.mark.parametrize("spec,expected", [
    ("80", [PortMapping(80, 0, "", "tcp")]),
    ("8080:80", [PortMapping(80, 8080, "", "tcp")]),
    ("8080:80/udp", [PortMapping(80, 8080, "", "udp")]),
    ("127.0.0.1:8080:80", [PortMapping(80, 8080, "127.0.0.1", "tcp")]),
    ("127.0.0.1::80/tcp", [PortMapping(80, 0, "127.0.0.1", "tcp")]),
    ("0.0.0.0:8080:80", [PortMapping(80, 8080, "", "tcp")]),
    ("53/UDP", [PortMapping(53, 0, "", "udp")]),
    ("8000-8001:80-81", [PortMapping(80, 8000, "", "tcp"), PortMapping(81, 8001, "", "tcp")]),
])
def test_parse_publish(spec, expected):
    assert parse_publish(spec) == expected


@pytest.mark.parametrize("spec,fragment", [
    ("", "no container port"),
    ("8080:", "no container port"),
    ("abc", "invalid port 'abc'"),
    ("8080:80/sctp", "invalid protocol"),
    ("70000:80", "out of range"),
    ("8080:0", "out of range"),
    ("1.2.3:8080:80", "invalid IP address"),
    ("a:b:c:d", "expected [IP:]HOSTPORT"),
    ("8000-8002:80-81", "differ in size"),
    ("90-80:90-80", "invalid port range"),
])
def test_malformed_publish_is_a_usage_error(spec, fragment):
    with pytest.raises(UsageError) as info:
        parse_publish(spec)
    assert fragment in str(info.value)
    assert info.value.exit_code == 125


def test_publish_all_uses_exposed_ports_and_keeps_explicit_ones():
    exposed = {"80/tcp": {}, "53/udp": {}, "443": {}}
    assert exposed_mappings(exposed) == [PortMapping(443, 0, "", "tcp"), PortMapping(53, 0, "", "udp"),
                                         PortMapping(80, 0, "", "tcp")]
    got = mappings_from_args(["8080:80"], True, exposed)
    assert PortMapping(80, 8080, "", "tcp") in got
    assert [m for m in got if m.container_port == 80] == [PortMapping(80, 8080, "", "tcp")]
    assert mappings_from_args([], False, exposed) == []


def test_same_host_port_twice_is_refused():
    with pytest.raises(Conflict, match="8080/tcp is published twice"):
        mappings_from_args(["8080:80", "8080:81"])
    # same number, other protocol: fine
    assert len(mappings_from_args(["8080:80", "8080:80/udp"])) == 2


def test_describe_and_round_trip():
    m = PortMapping(80, 8080, "", "tcp")
    assert m.describe() == "80/tcp -> 0.0.0.0:8080"
    assert m.to_dict() == {"container_port": 80, "host_port": 8080, "host_ip": "0.0.0.0", "proto": "tcp"}
    assert PortMapping.from_dict(m.to_dict()) == m
    local = PortMapping(80, 8080, "127.0.0.1", "udp")
    assert PortMapping.from_dict(local.to_dict()) == local


def test_port_held_by_a_listener_is_a_conflict_naming_it():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(Conflict, match=f"127.0.0.1:{port}/tcp"):
            assign_host_ports([PortMapping(80, port, "127.0.0.1", "tcp")], set())


def test_port_held_by_another_container_is_a_conflict():
    leases = {"a" * 64: {"ip": "10.213.7.2", "ports": [PortMapping(80, 18080, "", "tcp").to_dict()]}}
    taken = leased_ports(leases)
    with pytest.raises(Conflict, match="18080/tcp"):
        assign_host_ports([PortMapping(81, 18080, "", "tcp")], taken)


def test_random_ports_are_distinct_and_free():
    taken = set()
    got = assign_host_ports([PortMapping(80, 0, "127.0.0.1", "tcp"), PortMapping(81, 0, "127.0.0.1", "tcp")], taken)
    ports = [m.host_port for m in got]
    assert len(set(ports)) == 2 and all(p > 0 for p in ports)
    assert {(p, "tcp") for p in ports} <= taken
