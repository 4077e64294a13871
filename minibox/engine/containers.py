"""Container lifecycle: image + flags -> bundle (create), start, finish, remove.

A container's state dir ``<root>/containers/<id>`` is its OCI bundle:
``config.json``, the overlay dirs (``diff`` is the writable layer) and the
files bind-mounted over /etc. Every step that acquires something (name,
dir, overlay mount, cgroup, network endpoint) has a matching release in
:func:`release_runtime` / :func:`remove`, which tolerate partial setup, so a
failure half-way leaves nothing behind.
"""

import os
import signal

from minibox.engine import etcfiles, options, records
from minibox.engine.timefmt import now_rfc3339
from minibox.errors import Conflict, InvalidTransition, MiniboxError, NotFound, UsageError
from minibox.image.fsutil import remove_tree
from minibox.runtime import spec as ocispec

ZERO_TIME = "0001-01-01T00:00:00Z"


def create(root: str, args, *, keep_mounted: bool = False, trace=None) -> dict:
    """Create a container from ``args`` (the parsed run/create flags); return its record."""
    from minibox.image.overlay import mount_overlay, unmount_overlay
    from minibox.image.store import ImageStore

    records.ensure_root(root)
    _validate(args)
    store = ImageStore(root)
    image = _image_for(store, args)
    image_cfg = image.config.get("config") or {}
    argv = options.command_line(image_cfg, args.entrypoint, args.command)
    if not argv:
        raise MiniboxError("No command specified")

    cid = records.new_id()
    name = records.reserve_name(root, args.name, cid)
    cdir = records.container_dir(root, cid)
    rootfs = {d: os.path.join(cdir, d) for d in ("diff", "work", "merged")}
    mounted = False
    lock = None
    try:
        os.mkdir(cdir, 0o700)
        # Held until the record exists: a ``rm -f`` that finds this dir
        # without a record waits for us, and cleans up only if we died.
        lock = records.locked(root, cid).__enter__()
        for path in rootfs.values():
            os.mkdir(path, 0o755)
        mount_overlay(store, image, rootfs["diff"], rootfs["work"], rootfs["merged"], trace=trace)
        mounted = True
        rec = _new_record(cid, name, args, image, image_cfg, argv, rootfs)
        rec["rootfs"]["lower"] = list(reversed(image.layer_dirs()))  # docker lists the top layer first
        spec = build_spec(root, rec, args, image_cfg, argv)
        if _idmap(spec):
            # --userns-remap: the same layers, seen through idmapped mounts.
            unmount_overlay(rootfs["merged"])
            mount_overlay(store, image, rootfs["diff"], rootfs["work"], rootfs["merged"], trace=trace,
                          idmap=_idmap(spec))
        etcfiles.write_all(cdir, rec["config"]["Hostname"], dns=getattr(args, "dns", None) or (),
                           extra_hosts=_extra_hosts(args), host_network=args.network == "host")
        ocispec.save(cdir, spec)
        records.save(root, rec)
    except BaseException:
        if mounted:
            unmount_overlay(rootfs["merged"])
        remove_tree(cdir, ignore_errors=True)
        records.release_name(root, name, cid)
        raise
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)
    if not keep_mounted:
        unmount_overlay(rootfs["merged"])
    return rec


def _image_for(store, args):
    """The local image, pulled first when missing (docker's ``--pull missing``) or ``always``."""
    policy = getattr(args, "pull", None) or "missing"
    if policy != "always":
        try:
            return store.resolve(args.image)
        except NotFound:
            if policy == "never":
                raise
    from minibox.image.pull import ensure_image  # the registry client loads only when needed

    return ensure_image(store, args.image, pull_policy=policy, platform=getattr(args, "platform", None),
                        quiet=getattr(args, "quiet", False))


def _validate(args) -> None:
    if getattr(args, "stop_signal", None):
        from minibox.engine.lifecycle import parse_signal

        parse_signal(args.stop_signal)  # docker refuses a bad --stop-signal at create, not at stop
    if args.workdir and not args.workdir.startswith("/"):
        raise UsageError(f"the working directory '{args.workdir}' is invalid, it needs to be an absolute path")
    if args.network not in ("none", "host", "bridge") and not args.network.startswith("container:"):
        if not _network_module_present():
            raise UsageError(f"network {args.network} not found")


def _network_module_present() -> bool:
    import importlib.util

    return importlib.util.find_spec("minibox.network") is not None


def _extra_hosts(args) -> list[tuple[str, str]]:
    result = []
    for item in getattr(args, "add_host", None) or []:
        host, sep, addr = item.partition(":")
        if not sep or not host or not addr:
            raise UsageError(f"invalid argument \"{item}\" for \"--add-host\" flag: bad format for add-host")
        result.append((addr, host))
    return result


def _new_record(cid, name, args, image, image_cfg, argv, rootfs) -> dict:
    hostname = args.hostname or (cid[:12] if args.network != "host" else os.uname().nodename)
    return {
        "id": cid,
        "name": name,
        "created": now_rfc3339(),
        "image": args.image,
        "image_id": image.id,
        "path": argv[0],
        "args": argv[1:],
        "config": {
            "Hostname": hostname,
            "User": args.user if args.user is not None else image_cfg.get("User", ""),
            "Tty": bool(args.tty),
            "OpenStdin": bool(args.interactive),
            "Env": [],
            "Cmd": args.command or (image_cfg.get("Cmd") if args.entrypoint is None else []) or None,
            "Entrypoint": ([args.entrypoint] if args.entrypoint else None)
            if args.entrypoint is not None else image_cfg.get("Entrypoint"),
            "Image": args.image,
            "WorkingDir": args.workdir or image_cfg.get("WorkingDir", ""),
            "Labels": image_cfg.get("Labels") or {},
            "StopSignal": getattr(args, "stop_signal", None) or image_cfg.get("StopSignal") or "SIGTERM",
            "StopTimeout": getattr(args, "stop_timeout", None),
            "ExposedPorts": image_cfg.get("ExposedPorts") or {},
        },
        "host_config": {
            "AutoRemove": bool(args.rm),
            "NetworkMode": args.network,
            "Publish": list(getattr(args, "publish", None) or []),
            "PublishAll": bool(getattr(args, "publish_all", False)),
            "IP": getattr(args, "ip", None),
            "Dns": list(getattr(args, "dns", None) or []),
            "ExtraHosts": list(getattr(args, "add_host", None) or []),
            "Binds": list(args.volume or []),
            "ReadonlyRootfs": bool(args.read_only),
            "CgroupParent": getattr(args, "cgroup_parent", None) or "",
            "Init": bool(getattr(args, "init", False)),
        },
        "mounts": [],
        "state": {
            "status": "created", "running": False, "paused": False, "pid": 0, "pid_start": None,
            "exit_code": 0, "oom_killed": False, "error": "",
            "started_at": ZERO_TIME, "finished_at": ZERO_TIME,
        },
        "rootfs": {"lower": [], "upper": rootfs["diff"], "work": rootfs["work"], "merged": rootfs["merged"]},
        "cgroup_paths": {},
        "network": None,
        "log_path": os.path.join(records.container_dir("", cid), f"{cid}-json.log").lstrip("/"),
    }


def build_spec(root: str, rec: dict, args, image_cfg: dict, argv: list[str]) -> dict:
    """The OCI config.json for this container: docker's defaults plus the flags."""
    from minibox.runtime.paths import secure_join

    cdir = records.container_dir(root, rec["id"])
    merged = rec["rootfs"]["merged"]
    spec = ocispec.default_spec()
    process = spec["process"]
    passwd = _read_in_rootfs(merged, "/etc/passwd")
    # "0", not "root": a scratch image has no /etc/passwd to look a name up in.
    user = options.resolve_user(rec["config"]["User"] or "0", passwd,
                                _read_in_rootfs(merged, "/etc/group"),
                                getattr(args, "group_add", None) or [])
    env = options.merge_env(image_cfg.get("Env") or [], args.env_file or [], args.env or [])
    keys = {e.partition("=")[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, f"PATH={ocispec.DEFAULT_PATH}")
    env.append(f"HOSTNAME={rec['config']['Hostname']}")
    if args.tty and "TERM" not in keys:
        env.append("TERM=xterm")
    if "HOME" not in keys:
        env.append(f"HOME={options.home_of(user['uid'], passwd)}")
    rec["config"]["Env"] = env
    process.update(args=argv, env=env, cwd=rec["config"]["WorkingDir"] or "/", user=user,
                   terminal=bool(args.tty))
    spec["root"] = {"path": merged, "readonly": bool(args.read_only)}
    spec["hostname"] = rec["config"]["Hostname"]

    for fname in ("hostname", "hosts", "resolv.conf"):
        spec["mounts"].append({"destination": f"/etc/{fname}", "type": "bind",
                               "source": os.path.join(cdir, fname), "options": ["rbind", "rprivate"]})
    if getattr(args, "init", False):
        from minibox import libexec

        # docker's --init: a tiny static init as PID 1 that reaps and forwards signals.
        spec["mounts"].append({"destination": "/sbin/docker-init", "type": "bind",
                               "source": libexec.path(libexec.INIT), "options": ["rbind", "rprivate", "ro"]})
        process["args"] = ["/sbin/docker-init", "--", *argv]
    for vol in args.volume or []:
        mount = _volume_mount(root, options.parse_volume(vol), merged, secure_join)
        rec["mounts"].append(mount)
        opts = ["rbind", "rprivate"] + (["ro"] if mount["readonly"] else [])
        spec["mounts"].append({"destination": mount["target"], "type": "bind",
                               "source": mount["host_path"], "options": opts})

    linux = spec["linux"]
    mode = args.network
    if mode == "host":
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    elif mode.startswith("container:"):
        other = records.load(root, records.resolve(root, mode.split(":", 1)[1]))
        if other["state"]["status"] != "running":
            raise Conflict(f"cannot join network of a non running container: {other['id']}")
        for ns in linux["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/proc/{other['state']['pid']}/ns/net"
    from minibox.cgroups import cgroups_path
    from minibox.cgroups.flags import host_config, resources_from_args

    linux["cgroupsPath"] = cgroups_path(getattr(args, "cgroup_parent", None), rec["id"])
    linux["resources"] = resources_from_args(args)
    rec["host_config"].update(host_config(linux["resources"]))  # Memory, PidsLimit... for inspect
    _apply_security(spec, args)
    return spec


def _apply_security(spec: dict, args) -> None:
    from minibox.security_flags import apply_to_spec

    apply_to_spec(spec, args)


def _read_in_rootfs(merged: str, path: str) -> str:
    from minibox.runtime.paths import secure_join

    try:
        with open(secure_join(merged, path), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _volume_mount(root: str, vol: dict, merged: str, secure_join) -> dict:
    from minibox.engine import volumes

    if vol["kind"] == "bind":
        if not os.path.exists(vol["source"]):
            # docker creates a missing bind source as a directory.
            os.makedirs(vol["source"], 0o755, exist_ok=True)
        host_path = vol["source"]
    else:
        anonymous = not vol["source"]
        if anonymous:
            vol["source"] = os.urandom(32).hex()
        host_path, created = volumes.ensure(root, vol["source"], anonymous=anonymous)
        if created and not vol["nocopy"]:
            volumes.copy_up(secure_join(merged, vol["target"]), host_path)
        vol["anonymous"] = anonymous
    return dict(vol, host_path=host_path)


# ------------------------------------------------------------------ starting


def start(root: str, rec: dict, *, stdio=None, winsize: bytes | None = None, trace=None):
    """Mount the rootfs, create and start the init; return the runtime's InitProcess.

    The record is saved as "running" before this returns. On failure every
    runtime resource acquired so far is released and the record says why.
    """
    from minibox.image.overlay import mount_overlay
    from minibox.image.store import ImageStore
    from minibox.runtime import process

    if rec["state"]["status"] in ("running", "paused"):
        raise InvalidTransition(f"container {rec['id'][:12]} is already running")
    cdir = records.container_dir(root, rec["id"])
    spec = ocispec.load(cdir)
    merged = rec["rootfs"]["merged"]
    if not os.path.ismount(merged):
        store = ImageStore(root)
        mount_overlay(store, store.resolve(rec["image_id"]), rec["rootfs"]["upper"],
                      rec["rootfs"]["work"], merged, trace=trace, idmap=_idmap(spec))
    init = None
    records.mark_starting(root, rec["id"])
    try:
        init = process.create(spec, cdir, stdio=stdio, trace=trace)
        if init.cgroup is not None:
            rec["cgroup_paths"] = init.cgroup.paths()
        _reserve_network(root, rec)
        if rec.get("network"):
            from minibox import network

            network.attach(rec["network"], init.pid)
            if trace:
                _trace_network(trace, rec["network"], init.pid)
        init.start(winsize)
    except BaseException as exc:
        # The init may have failed on its own first (a missing command): its
        # report says more than the error that caused here (a vanished netns).
        failure = init.abort() if init is not None else None
        error = failure or exc
        rec["state"]["error"] = str(error)
        release_runtime(root, rec, getattr(init, "cgroup", None))
        _mark_exited(rec, getattr(error, "exit_code", 125))
        records.save(root, rec)
        records.clear_starting(root, rec["id"])
        if failure is not None:
            raise failure from None
        raise
    state = rec["state"]
    state.update(status="running", running=True, pid=init.pid,
                 pid_start=records.pid_start_time(init.pid), started_at=now_rfc3339(),
                 finished_at=ZERO_TIME, exit_code=0, oom_killed=False, error="",
                 monitor_pid=os.getpid(), monitor_start=records.pid_start_time(os.getpid()))
    state.pop("needs_cleanup", None)
    records.save(root, rec)
    records.clear_starting(root, rec["id"])
    return init


def _idmap(spec: dict):
    from minibox.runtime.userns import idmap_of

    return idmap_of(spec)


def _reserve_network(root: str, rec: dict) -> None:
    """Lease the container's address and name it in its /etc/hosts.

    Runs while the init sets itself up: /etc/hosts is rewritten in place,
    and the init's bind mount of it shows the new text.
    """
    mode = rec["host_config"]["NetworkMode"]
    if mode in ("none", "host") or mode.startswith("container:"):
        return
    from minibox import network

    net_args = _NetArgs(rec)
    rec["network"] = network.reserve(root, rec["id"], net_args)
    extra = _extra_hosts(net_args) + network.hosts_entries(root, rec["network"])
    etcfiles.update_hosts(records.container_dir(root, rec["id"]), rec["config"]["Hostname"],
                          rec["network"].get("ip"), extra)


def _trace_network(trace, ep: dict, pid: int) -> None:
    trace(f"veth {ep.get('host_veth')} (host, on {ep.get('bridge') or ep.get('network')}) <-> "
          f"eth0 (in /proc/{pid}/ns/net)")
    trace(f"ip addr add {ep.get('ip')}/{ep.get('prefixlen')} dev eth0; "
          f"ip route add default via {ep.get('gateway')}; mac {ep.get('mac')}")
    for port in ep.get("ports") or []:
        trace(f"publish {port}")


class _NetArgs:
    """The network flags a record keeps, in the shape minibox.network.reserve expects."""

    def __init__(self, rec: dict):
        hc = rec["host_config"]
        self.network = hc["NetworkMode"]
        self.publish = hc.get("Publish") or []
        self.publish_all = hc.get("PublishAll", False)
        self.ip = hc.get("IP")
        self.dns = hc.get("Dns") or []
        self.add_host = hc.get("ExtraHosts") or []
        self.hostname = rec["config"]["Hostname"]
        self.name = rec["name"]
        self.exposed_ports = rec["config"].get("ExposedPorts") or {}


def _mark_exited(rec: dict, exit_code: int, oom: bool = False) -> None:
    rec["state"].update(status="exited", running=False, paused=False, pid=0, exit_code=exit_code,
                        oom_killed=oom, finished_at=now_rfc3339())


def finish(root: str, rec: dict, exit_code: int, cgroup=None) -> dict:
    """Record the exit of a container's init and release its runtime resources."""
    try:
        with records.locked(root, rec["id"]):
            rec = _finish_locked(root, rec, exit_code, cgroup)
    except NotFound:
        return rec  # removed meanwhile (rm -f): nothing left to record
    if rec["host_config"]["AutoRemove"]:
        try:
            remove(root, rec["id"], force=True)
        except NotFound:
            pass
    return rec


def _finish_locked(root: str, rec: dict, exit_code: int, cgroup) -> dict:
    rec = dict(rec, state=dict(rec["state"]))
    oom = False
    if cgroup is None and rec.get("cgroup_paths"):
        cgroup = _open_cgroup(rec)
    if cgroup is not None:
        try:
            oom = cgroup.oom_killed() and exit_code == 128 + signal.SIGKILL
        except OSError:
            oom = False
    _mark_exited(rec, exit_code, oom)
    try:
        release_runtime(root, rec, cgroup)
    finally:
        records.save(root, rec)
    return rec


def _open_cgroup(rec: dict):
    from minibox.cgroups import open_driver

    try:
        return open_driver().open(rec["cgroup_paths"])
    except OSError:
        return None


def _find_cgroup(root: str, rec: dict):
    """The cgroup of a start that was killed before it saved the cgroup's paths."""
    from minibox.cgroups import open_driver

    try:
        path = ocispec.load(records.container_dir(root, rec["id"]))["linux"]["cgroupsPath"]
        return open_driver().find(path)
    except (OSError, KeyError, MiniboxError):
        return None


def release_runtime(root: str, rec: dict, cgroup=None, trace=None) -> None:
    """Undo start(): cgroup, rootfs mount, network. Idempotent, tolerates partial setup.

    The network goes last: the kernel removes the veth pair together with
    the container's dead netns, in a worker of its own, while we remove the
    cgroup and the mount (network.disconnect waits for it).
    """
    from minibox.image.overlay import unmount_overlay

    errors = []
    if cgroup is None and rec.get("cgroup_paths"):
        cgroup = _open_cgroup(rec)
    if cgroup is None and rec["state"].get("needs_cleanup"):
        cgroup = _find_cgroup(root, rec)
    if cgroup is not None:
        if trace:
            for cpath in dict.fromkeys(cgroup.paths().values()):
                if os.path.isdir(cpath):
                    trace(f"cgroup rmdir {cpath}")
        try:
            cgroup.destroy()
            rec["cgroup_paths"] = {}
        except Exception as exc:  # noqa: BLE001 - keep releasing the rest
            errors.append(exc)
    if trace and os.path.ismount(rec["rootfs"]["merged"]):
        trace(f"umount2 {rec['rootfs']['merged']} (the overlay)")
    try:
        unmount_overlay(rec["rootfs"]["merged"])
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)
    if rec.get("network"):
        try:
            from minibox import network

            if trace:
                trace(f"veth {rec['network'].get('host_veth')} goes with the container's netns "
                      f"(ip link del if the netns lives on); release {rec['network'].get('ip')}")
            network.disconnect(root, rec["id"], rec["network"])
            rec["network"] = None
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    rec["state"].pop("needs_cleanup", None)
    if errors:
        raise errors[0]


# ------------------------------------------------------------------ removing


def remove(root: str, ref: str, force: bool = False, volumes: bool = False, trace=None) -> str:
    """docker rm: refuse a running container unless ``force`` (then SIGKILL it first)."""
    cid = records.resolve(root, ref)
    try:
        rec = records.load(root, cid)
    except NotFound:
        _remove_unfinished(root, cid)
        return cid
    state = rec["state"]
    if state["status"] in ("running", "paused"):
        if not force:
            # docker's wording, which names the container with its leading slash
            if state["status"] == "paused":
                raise Conflict(f"cannot remove container \"/{rec['name']}\": container is paused and must "
                               "be unpaused first")
            raise Conflict(f"cannot remove container \"/{rec['name']}\": container is running: "
                           "stop the container before removing or force remove")
        if trace:
            trace(f"kill({state['pid']}, SIGKILL)")
        kill(rec, signal.SIGKILL)
        _wait_gone(state["pid"], state["pid_start"])
        # Let its monitor record the exit and release what it holds first.
        if trace:
            trace(f"wait for monitor {state.get('monitor_pid')}: it records the exit and releases "
                  "the veth, the cgroup and the overlay")
        _wait_gone(state.get("monitor_pid"), state.get("monitor_start"))
    with records.locked(root, cid):
        rec = records.load(root, cid)
        if rec["state"]["status"] in ("running", "paused"):
            raise Conflict(f"container {cid} is still running")
        crashed = bool(rec["state"].get("needs_cleanup"))
        release_runtime(root, rec, trace=trace)
        if trace:
            trace(f"rm -r {records.container_dir(root, cid)} (config.json, the writable layer diff/)")
        _remove_locked(root, rec, volumes)
    if crashed and _uses_bridge(rec):
        # A runtime killed between connecting and saving the record left a
        # veth and a lease the record does not know about.
        from minibox import network

        network.prune_stale(root)
    return cid


def _remove_unfinished(root: str, cid: str) -> None:
    """rm of a dir whose ``create`` was killed before it wrote the record.

    create holds the dir's lock until the record exists, so once we hold it
    and there still is no record, nobody will write one: unmount, delete, and
    free the name.
    """
    from minibox.image.overlay import unmount_overlay

    with records.locked(root, cid):
        if os.path.exists(os.path.join(records.container_dir(root, cid), records.RECORD)):
            raise Conflict(f"container {cid} was created meanwhile, try again")
        cdir = records.container_dir(root, cid)
        unmount_overlay(os.path.join(cdir, "merged"))
        doomed = os.path.join(records.containers_dir(root), f".removing-{cid}")
        os.rename(cdir, doomed)
    names = os.path.join(root, "names")
    for name in os.listdir(names):
        records.release_name(root, name, cid)
    remove_tree(doomed, ignore_errors=True)


def _uses_bridge(rec: dict) -> bool:
    mode = rec["host_config"]["NetworkMode"]
    return mode not in ("none", "host") and not mode.startswith("container:")


def _remove_locked(root: str, rec: dict, volumes: bool) -> None:
    cid = rec["id"]
    if volumes:
        from minibox.engine import volumes as vols

        for m in rec.get("mounts", []):
            if m.get("kind") == "volume" and m.get("anonymous"):
                remove_tree(vols.volume_dir(root, m["source"]), ignore_errors=True)
    cdir = records.container_dir(root, cid)
    # Rename first so a concurrent reader never sees a half-deleted container.
    doomed = os.path.join(records.containers_dir(root), f".removing-{cid}")
    os.rename(cdir, doomed)
    records.release_name(root, rec["name"], cid)
    remove_tree(doomed, ignore_errors=True)


def kill(rec: dict, sig: int) -> None:
    state = rec["state"]
    if not records.is_alive(state.get("pid"), state.get("pid_start")):
        return
    if state.get("paused") and rec.get("cgroup_paths"):
        cg = _open_cgroup(rec)
        if cg is not None:
            cg.thaw()
    os.kill(state["pid"], sig)


def _wait_gone(pid: int | None, start: int | None, timeout: float = 10.0) -> None:
    import time

    if not pid or pid == os.getpid():
        return

    deadline = time.monotonic() + timeout
    delay = 0.001
    while records.is_alive(pid, start) and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
