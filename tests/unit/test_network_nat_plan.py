"""The iptables plan: what is added, what is deleted, when minibox's chains go."""

from minibox.network import nat
from minibox.network.ports import PortMapping

SAVE_EMPTY = """*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
*filter
:FORWARD ACCEPT [0:0]
COMMIT
"""


def _applied(state, commands):
    """What iptables-save would show after the restore script (enough for -N/-A/-I/-D/-F/-X)."""
    for table, lines in commands.items():
        t = state.setdefault(table, {"chains": set(), "rules": set()})
        for line in lines:
            op, rest = line.split(" ", 1)
            if op == "-N":
                t["chains"].add(rest)
            elif op == "-X":
                t["chains"].discard(rest)
            elif op == "-F":
                t["rules"] = {r for r in t["rules"] if r.split()[0] != rest}
            elif op in ("-A", "-I"):
                t["rules"].add(rest)
            elif op == "-D":
                t["rules"].remove(rest)
    return state


def test_first_network_creates_chains_jumps_and_rules():
    state = nat.parse_save(SAVE_EMPTY)
    rules = nat.network_rules("mbrtest", "10.213.1.0/24")
    plan = nat.plan_add(state, rules)
    assert plan["nat"][:2] == ["-N MINIBOX-POSTROUTING", "-N MINIBOX-DNAT"]
    assert "-I FORWARD -j MINIBOX-FORWARD" in plan["filter"]
    assert "-A MINIBOX-POSTROUTING -s 10.213.1.0/24 ! -o mbrtest -j MASQUERADE" in plan["nat"]
    assert "-A MINIBOX-POSTROUTING -s 127.0.0.0/8 -o mbrtest -j MASQUERADE" in plan["nat"]
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j MINIBOX-DNAT" in plan["nat"]
    assert "-A OUTPUT -m addrtype --dst-type LOCAL -j MINIBOX-DNAT" in plan["nat"]
    assert "-I MINIBOX-FORWARD -i mbrtest ! -o mbrtest -j MINIBOX-ISOLATION" in plan["filter"]
    # applied once, the same plan is empty: idempotent
    state = _applied(state, plan)
    assert nat.plan_add(state, rules) == {}


def test_port_rule_has_the_form_iptables_save_prints():
    [(table, chain, rule, _)] = nat.port_rules("10.213.1.2", PortMapping(80, 8080, "127.0.0.1", "tcp"))
    assert (table, chain) == ("nat", "MINIBOX-DNAT")
    assert rule == "-d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.213.1.2:80"
    [(_, _, rule, _)] = nat.port_rules("10.213.1.2", PortMapping(53, 5353, "", "udp"))
    assert rule == "-p udp -m udp --dport 5353 -j DNAT --to-destination 10.213.1.2:53"


def test_removing_one_network_keeps_the_other_and_the_chains():
    state = nat.parse_save(SAVE_EMPTY)
    a = nat.network_rules("mbra", "10.213.1.0/24")
    b = nat.network_rules("mbrb", "10.213.2.0/24")
    state = _applied(state, nat.plan_add(state, a))
    state = _applied(state, nat.plan_add(state, b))
    plan = nat.plan_delete(state, a)
    assert not any(line.startswith("-X") for lines in plan.values() for line in lines)
    state = _applied(state, plan)
    assert nat.plan_add(state, b) == {}
    # the last one takes the jumps and the chains with it
    state = _applied(state, nat.plan_delete(state, b))
    assert not state["nat"]["rules"] and not state["filter"]["rules"]
    assert not {"MINIBOX-POSTROUTING", "MINIBOX-DNAT"} & state["nat"]["chains"]
    assert not {"MINIBOX-FORWARD", "MINIBOX-ISOLATION"} & state["filter"]["chains"]
    # and deleting again is a no-op
    assert nat.plan_delete(state, b) == {}


def test_foreign_rules_are_never_touched():
    text = SAVE_EMPTY.replace(":OUTPUT ACCEPT [0:0]\n", ":OUTPUT ACCEPT [0:0]\n-A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE\n")
    state = nat.parse_save(text)
    plan = nat.plan_delete(state, nat.network_rules("mbra", "10.213.1.0/24"))
    assert "172.17" not in nat.restore_script(plan)


def test_restore_script_layout():
    assert nat.restore_script({"nat": ["-N X"], "filter": []}) == "*nat\n-N X\nCOMMIT\n"
    assert nat.restore_script({}) == ""
