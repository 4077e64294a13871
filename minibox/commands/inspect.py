"""Return low-level information on containers or images, as docker's JSON."""

import json


def configure(p) -> None:
    p.add_argument("-f", "--format", help="Format output using a Go-template-like path: '{{.State.OOMKilled}}'")
    p.add_argument("--type", choices=("container", "image"), help="Only inspect this type")
    p.add_argument("names", nargs="+", metavar="NAME|ID")


def container_view(root: str, rec: dict) -> dict:
    """A record in the shape of ``docker inspect`` (the fields minibox has)."""
    s = rec["state"]
    cfg = dict(rec["config"])
    hc = rec["host_config"]
    rootfs = rec["rootfs"]
    net = rec.get("network") or {}
    return {
        "Id": rec["id"],
        "Created": rec["created"],
        "Path": rec["path"],
        "Args": rec["args"],
        "State": {
            "Status": s["status"], "Running": s["status"] in ("running", "paused"),
            "Paused": s["status"] == "paused", "Restarting": False,
            "OOMKilled": bool(s.get("oom_killed")), "Dead": False, "Pid": s.get("pid") or 0,
            "ExitCode": s.get("exit_code", 0), "Error": s.get("error", ""),
            "StartedAt": s["started_at"], "FinishedAt": s["finished_at"],
        },
        "Image": rec["image_id"],
        "ResolvConfPath": f"{root}/containers/{rec['id']}/resolv.conf",
        "HostnamePath": f"{root}/containers/{rec['id']}/hostname",
        "HostsPath": f"{root}/containers/{rec['id']}/hosts",
        "LogPath": f"{root}/{rec['log_path']}",
        "Name": "/" + rec["name"],
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": hc,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "LowerDir": ":".join(rootfs.get("lower") or []),
                "UpperDir": rootfs["upper"], "MergedDir": rootfs["merged"], "WorkDir": rootfs["work"],
            },
        },
        "Mounts": [{"Type": m["kind"], "Name": m["source"] if m["kind"] == "volume" else "",
                    "Source": m["host_path"], "Destination": m["target"], "RW": not m["readonly"]}
                   for m in rec.get("mounts", [])],
        "Config": cfg,
        "NetworkSettings": {
            "IPAddress": net.get("ip", ""), "Gateway": net.get("gateway", ""),
            "MacAddress": net.get("mac", ""), "IPPrefixLen": net.get("prefixlen", 0),
            "Ports": {f"{p['container_port']}/{p.get('proto', 'tcp')}":
                      [{"HostIp": p.get("host_ip", "0.0.0.0"), "HostPort": str(p["host_port"])}]
                      for p in net.get("ports") or []},
            "Networks": {net["network"]: net} if net else {},
        },
    }


def render(obj, fmt: str | None) -> str:
    if not fmt:
        return json.dumps(obj, indent=4)
    import re

    def lookup(match):
        expr = match.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(_path(obj, expr[5:].strip()))
        value = _path(obj, expr)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        return "" if value is None else str(value)

    return re.sub(r"\{\{\s*(.*?)\s*\}\}", lookup, fmt)


def _path(obj, expr: str):
    from minibox.errors import UsageError

    if expr == ".":
        return obj
    value = obj
    for part in expr.lstrip(".").split("."):
        if not isinstance(value, dict) or part not in value:
            raise UsageError(f"template: :1: can't evaluate field {part}")
        value = value[part]
    return value


def main(args) -> int:
    import sys

    from minibox.engine import records
    from minibox.errors import NotFound

    found = []
    status = 0
    for name in args.names:
        obj = None
        if args.type != "image":
            try:
                obj = container_view(args.root, records.load(args.root, records.resolve(args.root, name)))
            except NotFound:
                obj = None
        if obj is None and args.type != "container":
            obj = _image_view(args.root, name)
        if obj is None:
            print(f"minibox: Error: No such object: {name}", file=sys.stderr)
            status = 1
            continue
        found.append(obj)
    if args.format:
        for obj in found:
            print(render(obj, args.format))
    else:
        print(json.dumps(found, indent=4))
    return status


def _image_view(root: str, name: str):
    from minibox.errors import MiniboxError

    from minibox.image.store import ImageStore

    try:
        store = ImageStore(root)
        image = store.resolve(name)
    except MiniboxError:
        return None
    inspect = getattr(store, "inspect", None)
    if inspect is not None:
        return inspect(image)
    return {"Id": image.id, "RepoTags": image.repo_tags, "Config": image.config.get("config", {}),
            "RootFS": image.config.get("rootfs", {}), "GraphDriver": {"Name": "overlay2"}}
