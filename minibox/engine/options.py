"""Pure parsers for docker's run flags: -e/--env-file, -v, -u, -w, --entrypoint.

No syscalls here: everything is unit-tested without root.
"""

import os
import re

from minibox.errors import UsageError

_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def merge_env(image_env: list[str], env_files: list[str], env_flags: list[str],
              host_env: dict | None = None) -> list[str]:
    """docker's order: image Env, then --env-file lines, then -e; later keys win.

    ``-e NAME`` (no ``=``) copies NAME from the caller's environment, and is
    dropped when the caller has none, as docker does.
    """
    host_env = os.environ if host_env is None else host_env
    merged: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        merged[key] = value
    for path in env_files:
        for item in read_env_file(path):
            _put(merged, item, host_env)
    for item in env_flags:
        _put(merged, item, host_env)
    return [f"{k}={v}" for k, v in merged.items()]


def _put(merged: dict, item: str, host_env) -> None:
    key, sep, value = item.partition("=")
    if not key:
        raise UsageError(f"invalid environment variable: {item}")
    if sep:
        merged[key] = value
    elif key in host_env:
        merged[key] = host_env[key]


def read_env_file(path: str) -> list[str]:
    """Lines of an --env-file: ``#`` comments and blank lines skipped, as docker does."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(f"open {path}: {exc.strerror.lower()}") from None
    result = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        if " " in line.partition("=")[0]:
            raise UsageError(f"{path}:{lineno}: variable '{line.partition('=')[0]}' contains whitespaces")
        result.append(line)
    return result


def parse_volume(spec: str) -> dict:
    """``-v`` value -> {"kind": "bind"|"volume", "source", "target", "readonly"}.

    Forms: ``/host:/ctr[:ro|rw]``, ``name:/ctr[:ro]``, ``/ctr`` (an anonymous volume).
    """
    parts = spec.split(":")
    mode = ""
    if len(parts) == 3:
        source, target, mode = parts
    elif len(parts) == 2:
        source, target = parts
    elif len(parts) == 1:
        source, target = "", parts[0]
    else:
        raise UsageError(f"invalid volume specification: '{spec}'")
    options = [o for o in mode.split(",") if o]
    for o in options:
        if o not in ("ro", "rw", "z", "Z", "private", "rprivate", "slave", "rslave", "shared", "rshared", "nocopy"):
            raise UsageError(f"invalid mode: {o}")
    if not target.startswith("/"):
        raise UsageError(f"invalid volume specification: '{spec}': "
                         f"invalid mount config: the mount destination {target} must be an absolute path")
    if os.path.normpath(target) == "/":
        raise UsageError(f"invalid volume specification: '{spec}': invalid mount config: destination can't be '/'")
    if source.startswith("/") or source.startswith("."):
        kind = "bind"
        source = os.path.abspath(source)
    elif source == "":
        kind = "volume"
    elif _VOLUME_NAME.fullmatch(source):
        kind = "volume"
    else:
        raise UsageError(f"invalid volume specification: '{spec}': "
                         f'"{source}" includes invalid characters for a local volume name')
    return {"kind": kind, "source": source, "target": os.path.normpath(target),
            "readonly": "ro" in options, "nocopy": "nocopy" in options}


def command_line(image_config: dict, entrypoint: str | None, command: list[str]) -> list[str]:
    """docker's rule: --entrypoint replaces the image's and drops its Cmd; a command replaces Cmd."""
    if entrypoint is not None:
        ep = [entrypoint] if entrypoint else []
        cmd = command
    else:
        ep = list(image_config.get("Entrypoint") or [])
        cmd = command or list(image_config.get("Cmd") or [])
    return ep + cmd


def parse_passwd(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(user: str, passwd_text: str, group_text: str, group_add: list[str] = ()) -> dict:
    """``-u name|uid[:group|gid]`` -> OCI process.user, as docker resolves it in the image.

    A numeric uid without a passwd entry is fine (gid 0); a name that is not
    in /etc/passwd is an error. Supplementary groups come from /etc/group.
    """
    name_part, _, group_part = (user or "root").partition(":")
    passwd = parse_passwd(passwd_text)
    groups = parse_passwd(group_text)
    uid = gid = None
    username = None
    for entry in passwd:
        if len(entry) < 4:
            continue
        if entry[0] == name_part or (name_part.isdigit() and entry[2] == name_part):
            username, uid, gid = entry[0], int(entry[2]), int(entry[3])
            break
    if uid is None:
        if not name_part.isdigit():
            raise UsageError(f"unable to find user {name_part}: no matching entries in passwd file")
        uid, gid = int(name_part), 0
    if group_part:
        gid = _lookup_group(group_part, groups)
    extra = []
    if username:
        for entry in groups:
            if len(entry) >= 4 and username in entry[3].split(",") and int(entry[2]) != gid:
                extra.append(int(entry[2]))
    for g in group_add:
        extra.append(_lookup_group(g, groups))
    result = {"uid": uid, "gid": gid}
    if extra:
        result["additionalGids"] = sorted(set(extra))
    return result


def _lookup_group(group: str, groups: list[list[str]]) -> int:
    for entry in groups:
        if len(entry) >= 3 and (entry[0] == group or entry[2] == group):
            return int(entry[2])
    if group.isdigit():
        return int(group)
    raise UsageError(f"unable to find group {group}: no matching entries in group file")


def home_of(uid: int, passwd_text: str) -> str:
    for entry in parse_passwd(passwd_text):
        if len(entry) >= 6 and entry[2] == str(uid):
            return entry[5] or "/"
    return "/"
