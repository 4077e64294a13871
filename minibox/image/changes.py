"""Dockerfile-style ``--change`` instructions applied to an image config (docker import -c).

Pure logic: ``apply(container_config, ["CMD [\\"sh\\"]", "ENV A=1"])``.
Supported as docker supports them for import/commit: CMD, ENTRYPOINT, ENV,
EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
"""

import json
import shlex

from minibox.errors import UsageError

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")


def _exec_form(rest: str):
    """``["a", "b"]`` → list; anything else is shell form → ``/bin/sh -c``."""
    text = rest.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", text]


def _pairs(change: str, rest: str) -> list[tuple[str, str]]:
    """``K=V K2="v 2"`` or the legacy ``K V`` form."""
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise UsageError(f"invalid change {change!r}: {exc}") from None
    if not words:
        raise UsageError(f"invalid change {change!r}: needs at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        return [(key, value.strip())]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise UsageError(f"invalid change {change!r}: {w!r} is not KEY=VALUE")
        out.append((key, value))
    return out


def apply(cfg: dict, changes) -> dict:
    """Apply ``changes`` to the image's ``config`` dict in place and return it."""
    for change in changes or ():
        word, _, rest = change.strip().partition(" ")
        op = word.upper()
        rest = rest.strip()
        if op not in SUPPORTED:
            raise UsageError(f"invalid change {change!r}: {word} is not a valid change command")
        if not rest:
            raise UsageError(f"invalid change {change!r}: {op} needs an argument")
        if op in ("CMD", "ENTRYPOINT"):
            cfg["Cmd" if op == "CMD" else "Entrypoint"] = _exec_form(rest)
            if op == "ENTRYPOINT" and not rest.startswith("["):
                cfg["Cmd"] = None  # docker: a shell-form ENTRYPOINT ignores CMD
        elif op == "ENV":
            env = [e for e in (cfg.get("Env") or [])]
            for key, value in _pairs(change, rest):
                env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
            cfg["Env"] = env
        elif op == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs(change, rest))
            cfg["Labels"] = labels
        elif op == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in rest.split():
                port, _, proto = p.partition("/")
                if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
                    raise UsageError(f"invalid change {change!r}: invalid port {p!r}")
                ports[f"{int(port)}/{proto or 'tcp'}"] = {}
            cfg["ExposedPorts"] = ports
        elif op == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            items = _exec_form(rest) if rest.startswith("[") else rest.split()
            if items[:2] == ["/bin/sh", "-c"]:
                items = rest.split()
            for v in items:
                vols[v] = {}
            cfg["Volumes"] = vols
        elif op == "USER":
            cfg["User"] = rest
        elif op == "WORKDIR":
            cfg["WorkingDir"] = rest
        elif op == "STOPSIGNAL":
            cfg["StopSignal"] = rest
        elif op == "ONBUILD":
            cfg["OnBuild"] = (cfg.get("OnBuild") or []) + [rest]
    return cfg
