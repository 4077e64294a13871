"""How each Dockerfile instruction changes the image config (pure, no filesystem).

The image config's ``config`` object is what ``run`` reads (Env, Cmd,
Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels, StopSignal,
OnBuild, Healthcheck, Shell). Instructions arrive here already substituted.
Docker's rules kept here:

* shell forms of CMD/ENTRYPOINT/HEALTHCHECK run through the stage's SHELL
  (``/bin/sh -c`` unless SHELL changed it);
* a relative WORKDIR is relative to the previous one;
* ENTRYPOINT clears a CMD inherited from the base image (a CMD set earlier
  in the same stage is kept);
* EXPOSE ``80`` means ``80/tcp``.
"""

import copy
import posixpath

from minibox.build.dockerfile import Instruction

DEFAULT_SHELL = ["/bin/sh", "-c"]


def initial_config(base: dict | None) -> dict:
    """A deep copy of the base image's config (empty for ``scratch``)."""
    cfg = copy.deepcopy(base or {})
    cfg.setdefault("config", {})
    cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    cfg.setdefault("history", [])
    return cfg


def shell_of(cfg: dict) -> list[str]:
    return list(cfg.get("Shell") or DEFAULT_SHELL)


def command(cfg: dict, ins: Instruction) -> list[str]:
    """argv of an exec or shell form (shell form goes through SHELL)."""
    if ins.json:
        return list(ins.args)
    return shell_of(cfg) + [ins.args[0]]


def resolve_workdir(cfg: dict, path: str) -> str:
    if not path.startswith("/"):
        path = posixpath.join(cfg.get("WorkingDir") or "/", path)
    return posixpath.normpath(path) if path not in ("", "/") else "/"


def apply(cfg: dict, ins: Instruction, stage_state: dict) -> None:
    """Apply a metadata instruction to the ``config`` dict ``cfg`` in place.

    ``stage_state`` remembers what this stage set (``cmd_set``) for the
    ENTRYPOINT rule. RUN/COPY/ADD/FROM/ARG leave the config unchanged.
    """
    op = ins.cmd
    if op == "ENV":
        env = list(cfg.get("Env") or [])
        for key, value in ins.pairs():
            env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
        cfg["Env"] = env
    elif op == "WORKDIR":
        cfg["WorkingDir"] = resolve_workdir(cfg, ins.args[0])
    elif op == "USER":
        cfg["User"] = ins.args[0]
    elif op == "CMD":
        cfg["Cmd"] = command(cfg, ins)
        stage_state["cmd_set"] = True
    elif op == "ENTRYPOINT":
        cfg["Entrypoint"] = command(cfg, ins)
        if not stage_state.get("cmd_set"):
            cfg["Cmd"] = None
    elif op == "EXPOSE":
        ports = dict(cfg.get("ExposedPorts") or {})
        for p in ins.args:
            port, _, proto = p.partition("/")
            ports[f"{port}/{(proto or 'tcp').lower()}"] = {}
        cfg["ExposedPorts"] = ports
    elif op == "LABEL":
        labels = dict(cfg.get("Labels") or {})
        labels.update(ins.pairs())
        cfg["Labels"] = labels
    elif op == "VOLUME":
        vols = dict(cfg.get("Volumes") or {})
        for v in ins.args:
            vols[v] = {}
        cfg["Volumes"] = vols
    elif op == "STOPSIGNAL":
        cfg["StopSignal"] = ins.args[0]
    elif op == "SHELL":
        cfg["Shell"] = list(ins.args)
    elif op == "ONBUILD":
        cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [ins.args[0]]
    elif op == "MAINTAINER":
        stage_state["author"] = ins.args[0]
    elif op == "HEALTHCHECK":
        cfg["Healthcheck"] = healthcheck(cfg, ins)


def healthcheck(cfg: dict, ins: Instruction) -> dict:
    if ins.args == ["NONE"]:
        return {"Test": ["NONE"]}
    argv = ins.args[1:]
    test = ["CMD"] + argv if ins.json else ["CMD-SHELL", argv[0]]
    out: dict = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        value = ins.flags.get(flag)
        if isinstance(value, str):
            out[key] = parse_duration(value, ins)
    retries = ins.flags.get("retries")
    if isinstance(retries, str):
        if not retries.isdigit():
            raise ins.error(f"HEALTHCHECK: invalid retries {retries!r}")
        out["Retries"] = int(retries)
    return out


_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(text: str, ins: Instruction) -> int:
    """A Go duration (``1m30s``, ``500ms``) in nanoseconds."""
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ins.error(f"HEALTHCHECK: invalid duration {text!r}")
    return int(sum(float(n) * _UNITS[u] for n, u in parts))
