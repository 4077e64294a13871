"""Update configuration of one or more containers (resource limits, live)."""

import errno
import sys


def configure(p) -> None:
    from minibox.cgroups.flags import add_arguments

    add_arguments(p, update=True)
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def update(root: str, ref: str, resources: dict) -> tuple[str, list[str]]:
    """Write the new limits into a running container's cgroup, then into its bundle and record.

    The kernel checks them against what is in force (a memory limit above
    the memsw limit, a limit below current usage...), so a refusal leaves the
    saved configuration untouched. Returns (id, warnings).
    """
    from minibox.cgroups import flags, open_driver
    from minibox.engine import records
    from minibox.errors import MiniboxError, SyscallError
    from minibox.runtime import spec as ocispec

    cid = records.resolve(root, ref)
    rec = records.load(root, cid)
    warnings = []
    if rec["state"]["status"] in ("running", "paused") and rec.get("cgroup_paths"):
        cg = open_driver().open(rec["cgroup_paths"])
        try:
            warnings = cg.apply(resources)
        except SyscallError as exc:
            if exc.errno in (errno.EINVAL, errno.EBUSY) and "memory" in (exc.path or ""):
                raise MiniboxError(
                    f"cannot update container {cid[:12]}: {exc} (memory limit should be smaller than the "
                    "memoryswap limit in force, and not below current usage; update --memory-swap at the same time)"
                ) from None
            raise MiniboxError(f"cannot update container {cid[:12]}: {exc}") from None
    bundle = records.container_dir(root, cid)
    spec = ocispec.load(bundle)
    linux = spec.setdefault("linux", {})
    linux["resources"] = flags.merge(linux.get("resources") or {}, resources)
    ocispec.save(bundle, spec)
    rec["host_config"].update(flags.host_config(linux["resources"]))
    records.save(root, rec)
    return cid, warnings


def main(args) -> int:
    from minibox.cgroups.flags import resources_from_args
    from minibox.errors import MiniboxError, UsageError

    resources = resources_from_args(args, update=True)
    if not resources:
        raise UsageError("you must provide one or more flags when using this command")
    status = 0
    for ref in args.containers:
        try:
            _, warnings = update(args.root, ref, resources)
            for w in warnings:
                print(f"WARNING: {w}", file=sys.stderr)
            print(ref)
        except MiniboxError as exc:
            print(f"minibox: Error response from daemon: {exc}", file=sys.stderr)
            status = 1
    return status
