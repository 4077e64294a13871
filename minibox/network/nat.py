"""iptables rules for NAT, forwarding, isolation and published ports.

minibox keeps every rule in chains of its own, reached by one jump from the
built-in chains, so its rules are easy to find and never reorder anyone
else's:

  nat    POSTROUTING -j MINIBOX-POSTROUTING   masquerade the subnets going out,
                                              and 127/8 or hairpin traffic going in
  nat    PREROUTING / OUTPUT --dst-type LOCAL -j MINIBOX-DNAT
                                              published ports (OUTPUT too, so that
                                              127.0.0.1:PORT works without a proxy)
  filter FORWARD -j MINIBOX-FORWARD           accept the bridges' traffic, after
         MINIBOX-ISOLATION                    dropping bridge-to-other-bridge traffic

Speed matters (this runs in every ``minibox run``): the current rules are
read with one ``iptables-save`` and the missing ones applied with one
``iptables-restore --noflush``, instead of an ``iptables -C`` per rule. Rules
are written in the exact form iptables-save prints them, which is what makes
the comparison (and idempotency) work. A host-wide flock serialises minibox
processes between the read and the write. Chains left empty when the last
network goes are removed together with their jumps.
"""

import os
from contextlib import contextmanager

from minibox.errors import MiniboxError
from minibox.network.ipam import flocked

POSTROUTING = "MINIBOX-POSTROUTING"
DNAT = "MINIBOX-DNAT"
FORWARD = "MINIBOX-FORWARD"
ISOLATION = "MINIBOX-ISOLATION"

CHAINS = {"nat": (POSTROUTING, DNAT), "filter": (FORWARD, ISOLATION)}

# (table, chain, rule, insert-at-top) of the jumps into minibox's chains.
JUMPS = (
    ("nat", "POSTROUTING", f"-j {POSTROUTING}", False),
    ("nat", "PREROUTING", f"-m addrtype --dst-type LOCAL -j {DNAT}", False),
    ("nat", "OUTPUT", f"-m addrtype --dst-type LOCAL -j {DNAT}", False),
    ("filter", "FORWARD", f"-j {FORWARD}", True),
)

LOCK_DIR = "/run/minibox"
LOCK = os.path.join(LOCK_DIR, "iptables.lock")


# --------------------------------------------------------------------------- pure


def network_rules(device: str, subnet: str) -> list[tuple[str, str, str, bool]]:
    """The rules one bridge network needs, as (table, chain, rule, insert)."""
    return [
        # Outbound NAT for the containers, except to their own bridge.
        ("nat", POSTROUTING, f"-s {subnet} ! -o {device} -j MASQUERADE", False),
        # A published port reached on 127.0.0.1: the packet keeps its loopback
        # source after DNAT, which the container could not answer.
        ("nat", POSTROUTING, f"-s 127.0.0.0/8 -o {device} -j MASQUERADE", False),
        # A container reaching a published port of a neighbour through the
        # host: without this the reply would go straight back over the bridge
        # with the wrong source address.
        ("nat", POSTROUTING, f"-s {subnet} -o {device} -m conntrack --ctstate DNAT -j MASQUERADE", False),
        ("filter", FORWARD, f"-i {device} ! -o {device} -j {ISOLATION}", True),
        ("filter", FORWARD, f"-i {device} -j ACCEPT", False),
        ("filter", FORWARD, f"-o {device} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT", False),
        ("filter", ISOLATION, f"-o {device} -j DROP", False),
    ]


def port_rules(container_ip: str, mapping) -> list[tuple[str, str, str, bool]]:
    """The DNAT rule of one published port (a ``PortMapping``)."""
    dest = f"-d {mapping.host_ip}/32 " if mapping.host_ip else ""
    proto = mapping.proto
    return [(
        "nat", DNAT,
        (f"{dest}-p {proto} -m {proto} --dport {mapping.host_port} "
         f"-j DNAT --to-destination {container_ip}:{mapping.container_port}"),
        False,
    )]


def parse_save(text: str) -> dict[str, dict]:
    """iptables-save output → {table: {"chains": set, "rules": set of "CHAIN rule"}}."""
    tables: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), {"chains": set(), "rules": set()})
        elif current is None:
            continue
        elif line.startswith(":"):
            current["chains"].add(line[1:].split()[0])
        elif line.startswith("-A "):
            current["rules"].add(line[3:].strip())
    return tables


def _table(state: dict, name: str) -> dict:
    return state.get(name) or {"chains": set(), "rules": set()}


def plan_add(state: dict, rules) -> dict[str, list[str]]:
    """The restore commands (per table) that add the missing chains, jumps and ``rules``."""
    out: dict[str, list[str]] = {}
    for table, chains in CHAINS.items():
        for chain in chains:
            if chain not in _table(state, table)["chains"]:
                out.setdefault(table, []).append(f"-N {chain}")
    for table, chain, rule, insert in list(JUMPS) + list(rules):
        if f"{chain} {rule}" not in _table(state, table)["rules"]:
            out.setdefault(table, []).append(f"{'-I' if insert else '-A'} {chain} {rule}")
    return out


def plan_delete(state: dict, rules, drop_empty_chains: bool = True) -> dict[str, list[str]]:
    """Restore commands deleting ``rules`` that exist, then minibox's chains if left empty."""
    out: dict[str, list[str]] = {}
    remaining = {t: set(_table(state, t)["rules"]) for t in CHAINS}
    for table, chain, rule, _ in rules:
        line = f"{chain} {rule}"
        if line in remaining.get(table, ()):
            out.setdefault(table, []).append(f"-D {line}")
            remaining[table].discard(line)
    if drop_empty_chains:
        ours = {c for chains in CHAINS.values() for c in chains}
        in_ours = [line for t in remaining.values() for line in t if line.split()[0] in ours]
        if not in_ours:
            # No network or port of any minibox root is left: remove the
            # jumps, then the chains.
            for table, chain, rule, _ in JUMPS:
                if f"{chain} {rule}" in remaining.get(table, ()):
                    out.setdefault(table, []).append(f"-D {chain} {rule}")
            for table, chains in CHAINS.items():
                for chain in chains:
                    if chain in _table(state, table)["chains"]:
                        out.setdefault(table, []).append(f"-F {chain}")
            for table, chains in CHAINS.items():
                for chain in chains:
                    if chain in _table(state, table)["chains"]:
                        out.setdefault(table, []).append(f"-X {chain}")
    return out


def restore_script(commands: dict[str, list[str]]) -> str:
    parts = []
    for table in sorted(commands):
        if commands[table]:
            parts.append(f"*{table}\n" + "\n".join(commands[table]) + "\nCOMMIT\n")
    return "".join(parts)


# --------------------------------------------------------------------------- host


def _run(argv: list[str], stdin: str | None = None) -> str:
    import subprocess  # not at the top: a run on a ready bridge never calls iptables

    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise MiniboxError(f"{argv[0]} not found: install iptables") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise MiniboxError(f"{' '.join(argv[:3])} failed: {detail[-1] if detail else proc.returncode}")
    return proc.stdout


def current_state() -> dict:
    """minibox-relevant tables as iptables-save shows them now."""
    text = _run(["iptables-save", "-t", "nat"]) + _run(["iptables-save", "-t", "filter"])
    return parse_save(text)


def _apply(commands: dict[str, list[str]]) -> None:
    script = restore_script(commands)
    if script:
        _run(["iptables-restore", "-w", "--noflush"], stdin=script)


@contextmanager
def _host_lock():
    """iptables is host-wide state: one lock for every minibox root."""
    os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
    with flocked(LOCK):
        yield


def add_rules(rules) -> None:
    """Make sure minibox's chains, their jumps and ``rules`` exist (idempotent)."""
    with _host_lock():
        _apply(plan_add(current_state(), rules))


def delete_rules(rules, drop_empty_chains: bool = True) -> None:
    """Remove ``rules`` where present (idempotent); drop minibox's chains once empty."""
    with _host_lock():
        _apply(plan_delete(current_state(), rules, drop_empty_chains))


def write_sysctl(path: str, value: str) -> None:
    """Set a /proc/sys knob unless it already has ``value``."""
    full = os.path.join("/proc/sys", path)
    try:
        with open(full) as fh:
            if fh.read().strip() == value:
                return
        with open(full, "w") as fh:
            fh.write(value)
    except OSError as exc:
        raise MiniboxError(f"write {full}: {exc.strerror}") from None


def enable_forwarding(device: str) -> None:
    """IPv4 forwarding on, and 127/8 routable to ``device`` so DNAT from 127.0.0.1 works."""
    write_sysctl("net/ipv4/ip_forward", "1")
    write_sysctl(f"net/ipv4/conf/{device}/route_localnet", "1")
