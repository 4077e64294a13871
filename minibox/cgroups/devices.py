"""Device access rules: OCI ``linux.resources.devices`` → what the kernel enforces.

cgroup v1 has a ``devices`` controller that takes the rules one by one
(``devices.deny``/``devices.allow``); cgroup v2 has no such files, only an
eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE that answers each open or
mknod of a device node. To give both the same meaning, the rule list is
first run through :class:`Emulator`, a model of the v1 controller (a default
verdict plus a list of exceptions), and the v2 program is generated from the
emulator's final state, as runc and crun do. Everything here is pure.

The runtime, like runc, appends docker's standard allow list
(:data:`DEFAULT_ALLOWED`) to a non-empty rule list, so /dev/null and friends
keep working whatever the engine wrote; an absent or empty list means "no
device restriction" (the OCI default).
"""

# Bits of an access mask, as the kernel's BPF_DEVCG_ACC_* (v1 uses letters).
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE
_LETTERS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
# Device types, as BPF_DEVCG_DEV_BLOCK / BPF_DEVCG_DEV_CHAR.
DEV_BLOCK, DEV_CHAR = 1, 2
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
ANY = -1


def _rule(kind: str, major: int, minor: int, access: str) -> dict:
    return {"allow": True, "type": kind, "major": major, "minor": minor, "access": access}


# runc's AllowedDevices (docker's defaults): mknod of anything, the standard
# character devices, the console, ptys and /dev/net/tun.
DEFAULT_ALLOWED = (
    _rule("c", ANY, ANY, "m"),
    _rule("b", ANY, ANY, "m"),
    _rule("c", 1, 3, "rwm"),     # /dev/null
    _rule("c", 1, 5, "rwm"),     # /dev/zero
    _rule("c", 1, 7, "rwm"),     # /dev/full
    _rule("c", 1, 8, "rwm"),     # /dev/random
    _rule("c", 1, 9, "rwm"),     # /dev/urandom
    _rule("c", 5, 0, "rwm"),     # /dev/tty
    _rule("c", 5, 1, "rwm"),     # /dev/console
    _rule("c", 5, 2, "rwm"),     # /dev/ptmx
    _rule("c", 136, ANY, "rwm"),  # /dev/pts/*
    _rule("c", 10, 200, "rwm"),  # /dev/net/tun
)
DENY_ALL = {"allow": False, "access": "rwm"}


def access_mask(text: str | None) -> int:
    """``"rwm"`` → 7; an empty or absent access means all three, as in OCI."""
    if not text:
        return ACC_ALL
    mask = 0
    for ch in text:
        if ch not in _LETTERS:
            raise ValueError(f"invalid device access {text!r}: letters r, w, m only")
        mask |= _LETTERS[ch]
    return mask


def _num(value) -> int:
    return ANY if value is None or value == -1 or value == "*" else int(value)


def effective_rules(rules: list[dict] | None) -> list[dict]:
    """The spec's rules followed by the standard allow list (none when the spec has none)."""
    rules = list(rules or ())
    if not rules:
        return []
    present = {_key(r) for r in rules if r.get("allow")}
    return rules + [r for r in DEFAULT_ALLOWED if _key(r) not in present]


def _key(rule: dict) -> tuple:
    return (rule.get("type") or "a", _num(rule.get("major")), _num(rule.get("minor")),
            access_mask(rule.get("access")))


def v1_line(rule: dict) -> str:
    """The devices.allow/deny line: ``c 1:3 rwm``, ``a *:* rwm``."""
    kind = rule.get("type") or "a"
    major, minor = _num(rule.get("major")), _num(rule.get("minor"))
    return (f"{kind} {'*' if major == ANY else major}:{'*' if minor == ANY else minor} "
            f"{rule.get('access') or 'rwm'}")


def v1_writes(rules: list[dict]) -> list[tuple[str, str]]:
    """[(devices.allow|devices.deny, line)] in order, for the effective rules."""
    return [("devices.allow" if r.get("allow") else "devices.deny", v1_line(r))
            for r in effective_rules(rules)]


class Exception_:
    """One exception to the default verdict (no dataclasses: ~20 ms import on the start path)."""

    __slots__ = ("kind", "major", "minor", "access")

    def __init__(self, kind: int, major: int, minor: int, access: int):
        self.kind = kind      # DEV_BLOCK or DEV_CHAR
        self.major = major    # ANY for a wildcard
        self.minor = minor
        self.access = access

    def __eq__(self, other) -> bool:
        return isinstance(other, Exception_) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return f"Exception_({self.kind}, {self.major}, {self.minor}, {self.access})"


class Emulator:
    """The v1 devices controller's state: a default verdict plus exceptions to it.

    Same semantics as the kernel (security/device_cgroup.c): a type-``a``
    rule sets the default and clears the exceptions, whatever its numbers
    and access say; a rule agreeing with the default removes access bits
    from an identical exception; a rule disagreeing adds (merges) one. A new
    cgroup starts as its parent, assumed here to allow everything.
    """

    def __init__(self):
        self.default_allow = True
        self.exceptions: list[Exception_] = []

    @classmethod
    def of(cls, rules: list[dict]) -> "Emulator":
        emu = cls()
        for rule in rules:
            emu.apply(rule)
        return emu

    def apply(self, rule: dict) -> None:
        kind = rule.get("type") or "a"
        allow = bool(rule.get("allow"))
        if kind == "a":
            self.default_allow = allow
            self.exceptions = []
            return
        if kind not in _TYPES:
            raise ValueError(f"invalid device type {kind!r}: a, b or c")
        ex = Exception_(_TYPES[kind], _num(rule.get("major")), _num(rule.get("minor")),
                        access_mask(rule.get("access")))
        same = [e for e in self.exceptions
                if (e.kind, e.major, e.minor) == (ex.kind, ex.major, ex.minor)]
        if allow == self.default_allow:
            for e in same:
                e.access &= ~ex.access
            self.exceptions = [e for e in self.exceptions if e.access]
        elif same:
            same[0].access |= ex.access
        else:
            self.exceptions.append(ex)

    def allows(self, kind: int, major: int, minor: int, access: int) -> bool:
        """The kernel's verdict on one request (kind DEV_*, access ACC_* bits)."""
        def covers(e: Exception_, partial: bool) -> bool:
            if e.kind != kind or e.major not in (ANY, major) or e.minor not in (ANY, minor):
                return False
            return bool(e.access & access) if partial else not (access & ~e.access)

        if self.default_allow:
            # Any overlap with a deny exception refuses (device_cgroup's partial match).
            return not any(covers(e, True) for e in self.exceptions)
        return any(covers(e, False) for e in self.exceptions)


def is_allow_all(rules: list[dict]) -> bool:
    """True when the rules end up allowing every device (--privileged): nothing to enforce."""
    emu = Emulator.of(effective_rules(rules))
    return emu.default_allow and not emu.exceptions
