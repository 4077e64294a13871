"""Device rules: the v1 controller model and the generated v2 eBPF filter (pure, no root).

The generated program is run by a small interpreter of the eBPF
instructions it uses, written here independently of the generator, on
every combination of type, access and a set of device numbers; it must
agree with the emulated v1 controller, and both with docker's defaults.
"""

import itertools
import random
import struct

import pytest

from minibox.cgroups import ebpf
from minibox.cgroups.devices import (
    ACC_MKNOD,
    ACC_READ,
    ACC_WRITE,
    DENY_ALL,
    DEV_BLOCK,
    DEV_CHAR,
    Emulator,
    effective_rules,
    is_allow_all,
    v1_writes,
)

RW = ACC_READ | ACC_WRITE
MASK32, MASK64 = (1 << 32) - 1, (1 << 64) - 1


def run_bpf(code: bytes, kind: int, major: int, minor: int, access: int) -> int:
    """Execute a cgroup device program on one request (r1 = the context); returns r0."""
    ctx = struct.pack("<III", (access << 16) | kind, major, minor)
    regs: list = [0] * 11
    regs[1] = "ctx"
    insns = [struct.unpack_from("<BBhi", code, i) for i in range(0, len(code), 8)]
    pc = steps = 0
    while True:
        steps += 1
        assert steps < 10_000 and 0 <= pc < len(insns), "program ran off its end or looped"
        op, regbyte, off, imm = insns[pc]
        dst, src = regbyte & 0xF, regbyte >> 4
        pc += 1
        if op == 0x61:  # ldx w
            assert regs[src] == "ctx" and off in (0, 4, 8), "load from outside the context"
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == 0x54:  # and32 imm
            regs[dst] = regs[dst] & imm & MASK32
        elif op == 0x74:  # rsh32 imm
            regs[dst] = (regs[dst] & MASK32) >> imm
        elif op == 0xBC:  # mov32 reg
            regs[dst] = regs[src] & MASK32
        elif op == 0xB7:  # mov64 imm
            regs[dst] = imm & MASK64
        elif op in (0x15, 0x55):  # jeq / jne imm
            assert isinstance(regs[dst], int), "compare on the context pointer"
            if (regs[dst] == (imm & MASK64)) == (op == 0x15):
                assert off >= 0, "backward jump"
                pc += off
        elif op == 0x95:  # exit
            assert regs[0] in (0, 1)
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


def bpf_allows(rules, kind, major, minor, access) -> bool:
    return run_bpf(ebpf.encode(ebpf.program(rules)), kind, major, minor, access) == 1


DOCKER_DEFAULT = [DENY_ALL]
PRIVILEGED = [DENY_ALL, {"allow": True, "access": "rwm"}]


@pytest.mark.parametrize("check", [bpf_allows, lambda r, *a: Emulator.of(effective_rules(r)).allows(*a)],
                         ids=["ebpf", "emulator"])
def test_docker_defaults(check):
    assert check(DOCKER_DEFAULT, DEV_CHAR, 1, 3, RW)                      # /dev/null
    assert check(DOCKER_DEFAULT, DEV_CHAR, 136, 7, RW)                    # /dev/pts/7
    assert check(DOCKER_DEFAULT, DEV_CHAR, 10, 200, RW | ACC_MKNOD)       # /dev/net/tun
    assert check(DOCKER_DEFAULT, DEV_BLOCK, 7, 0, ACC_MKNOD)              # mknod of a loop dev
    assert not check(DOCKER_DEFAULT, DEV_BLOCK, 7, 0, ACC_READ)           # ... but no reading it
    assert not check(DOCKER_DEFAULT, DEV_BLOCK, 8, 0, ACC_WRITE)
    assert not check(DOCKER_DEFAULT, DEV_CHAR, 1, 1, ACC_READ)            # /dev/mem
    assert check(DOCKER_DEFAULT, DEV_CHAR, 1, 3, ACC_READ | ACC_MKNOD)
    assert check(PRIVILEGED, DEV_BLOCK, 7, 0, RW)
    user = DOCKER_DEFAULT + [{"allow": True, "type": "b", "major": 7, "minor": 3, "access": "r"}]
    assert check(user, DEV_BLOCK, 7, 3, ACC_READ)
    assert not check(user, DEV_BLOCK, 7, 3, RW)                           # w not granted
    assert not check(user, DEV_BLOCK, 7, 4, ACC_READ)


def test_v1_semantics_of_the_emulator():
    # A rule agreeing with the default removes bits from an identical exception.
    emu = Emulator.of([DENY_ALL, {"allow": True, "type": "c", "major": 4, "minor": 1, "access": "rwm"},
                       {"allow": False, "type": "c", "major": 4, "minor": 1, "access": "w"}])
    assert emu.allows(DEV_CHAR, 4, 1, ACC_READ) and not emu.allows(DEV_CHAR, 4, 1, ACC_WRITE)
    # Default allow: any overlap with a deny exception refuses.
    emu = Emulator.of([{"allow": False, "type": "b", "major": 8, "minor": -1, "access": "r"}])
    assert not emu.allows(DEV_BLOCK, 8, 5, RW) and emu.allows(DEV_BLOCK, 8, 5, ACC_WRITE)
    assert emu.allows(DEV_CHAR, 8, 5, ACC_READ)
    # An "a" rule resets whatever came before, whatever its numbers and access.
    emu = Emulator.of([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3},
                       {"allow": False, "type": "a", "major": 1, "minor": 3, "access": "r"}])
    assert emu.exceptions == [] and not emu.default_allow


def test_effective_rules_and_v1_lines():
    assert effective_rules([]) == [] and v1_writes([]) == []
    writes = v1_writes(DOCKER_DEFAULT)
    assert writes[0] == ("devices.deny", "a *:* rwm")
    assert ("devices.allow", "b *:* m") in writes and ("devices.allow", "c 136:* rwm") in writes
    assert is_allow_all(PRIVILEGED) and not is_allow_all(DOCKER_DEFAULT)


def test_program_matches_emulator_on_random_rule_lists():
    rng = random.Random(8)
    numbers = [0, 1, 3, 7, 8, 136]
    for _ in range(150):
        rules = []
        for _ in range(rng.randint(0, 6)):
            rules.append({"allow": rng.random() < 0.6, "type": rng.choice("abcc"),
                          "major": rng.choice(numbers + [-1]), "minor": rng.choice(numbers + [-1, None]),
                          "access": "".join(rng.sample("rwm", rng.randint(1, 3)))})
        emu = Emulator.of(effective_rules(rules))
        code = ebpf.encode(ebpf.program(rules))
        for kind, major, minor, access in itertools.product((DEV_BLOCK, DEV_CHAR), numbers, numbers,
                                                            range(1, 8)):
            expect = 1 if (not rules or emu.allows(kind, major, minor, access)) else 0
            assert run_bpf(code, kind, major, minor, access) == expect, (rules, kind, major, minor, access)


def test_encoding_is_struct_bpf_insn():
    # r2 = *(u32 *)(r1 + 4): code 0x61, dst 2 in the low nibble, src 1 in the high one.
    assert ebpf.encode([ebpf.insn(0x61, 2, 1, 4)]) == bytes([0x61, 0x12, 4, 0, 0, 0, 0, 0])
    assert ebpf.encode([ebpf.insn(0xB7, 0, imm=-1)]) == bytes([0xB7, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])


def test_bad_rules_are_refused():
    with pytest.raises(ValueError, match="access"):
        Emulator.of([{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rx"}])
    with pytest.raises(ValueError, match="type"):
        Emulator.of([{"allow": True, "type": "p", "major": 1, "minor": 3}])
