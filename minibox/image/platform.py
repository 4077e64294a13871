"""The host's platform in OCI terms (GOOS/GOARCH/variant), and platform matching."""

import os

_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64": ("mips64le", ""),
}


def host() -> dict:
    """``{"os": "linux", "architecture": "amd64", "variant": ""}`` for this machine."""
    arch, variant = _ARCH.get(os.uname().machine, (os.uname().machine, ""))
    return {"os": "linux", "architecture": arch, "variant": variant}


def parse(text: str | None) -> dict:
    """``linux/arm64/v8`` → platform dict; None → the host's."""
    from minibox.errors import UsageError

    if not text:
        return host()
    parts = text.split("/")
    if len(parts) == 1:
        parts = ["linux"] + parts
    if len(parts) > 3 or not all(parts):
        raise UsageError(f"invalid platform {text!r}: expected os/arch[/variant]")
    arch = _ARCH.get(parts[1], (parts[1], ""))[0]
    variant = parts[2] if len(parts) == 3 else ""
    return {"os": parts[0], "architecture": arch, "variant": variant}


def matches(want: dict, have: dict) -> bool:
    """True when a manifest list entry's ``platform`` satisfies ``want``.

    A missing variant on either side matches (arm64 images rarely say v8).
    """
    if have.get("os") != want["os"] or have.get("architecture") != want["architecture"]:
        return False
    wv, hv = want.get("variant") or "", have.get("variant") or ""
    return not wv or not hv or wv == hv
