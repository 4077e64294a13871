"""Manage minibox: `system df` (disk usage, what is shared) and `system prune`."""


def configure(p) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="COMMAND")
    df = sub.add_parser("df", help="Show minibox disk usage")
    df.add_argument("-v", "--verbose", action="store_true", help="Show per-image sizes")
    prune = sub.add_parser("prune", help="Remove stopped containers, leftovers, unused networks and build cache")
    prune.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    prune.add_argument("-a", "--all", action="store_true", help="Remove all unused images, not just dangling ones")
    prune.add_argument("--volumes", action="store_true", help="Prune anonymous volumes")
    sub.add_parser("info", help="Display system-wide information")


def _dir_size(path: str) -> int:
    import os

    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += st.st_blocks * 512 if name in filenames else 0
    return total


def df(root: str, verbose: bool) -> int:
    import os

    from minibox.engine import records, volumes
    from minibox.image.humanize import size as human_size
    from minibox.image.store import ImageStore

    usage = ImageStore(root).disk_usage()
    recs = records.load_all(root)
    writable = sum(_dir_size(r["rootfs"]["upper"]) for r in recs)
    active = sum(1 for r in recs if r["state"]["status"] in ("running", "paused"))
    vols = volumes.list_volumes(root)
    vol_size = sum(_dir_size(os.path.dirname(v["Mountpoint"])) for v in vols)
    rows = [("TYPE", "TOTAL", "ACTIVE", "SIZE", "SHARED"),
            ("Images", str(usage["images"]), str(len({r["image_id"] for r in recs})),
             human_size(usage["layers_size"]), human_size(usage["shared_size"])),
            ("Containers", str(len(recs)), str(active), human_size(writable), "0B"),
            ("Local Volumes", str(len(vols)), "", human_size(vol_size), "")]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    saved = usage["images_size_sum"] - usage["layers_size"]
    print(f"\nLayers are stored once: {usage['layers']} layers, {human_size(usage['layers_size'])} on disk "
          f"for {human_size(usage['images_size_sum'])} of images ({human_size(saved)} saved by sharing).")
    if verbose:
        print("\nIMAGE ID       SIZE      SHARED    UNIQUE")
        for image_id, p in usage["per_image"].items():
            print(f"{image_id.split(':')[1][:12]}   {human_size(p['size']):<9} "
                  f"{human_size(p['shared_size']):<9} {human_size(p['unique_size'])}")
    return 0


def prune(root: str, args) -> int:
    import sys

    from minibox.engine import containers, records

    if not args.force and sys.stdin.isatty():
        answer = input("WARNING! This will remove all stopped containers, leftovers of crashed runs,\n"
                       "unused networks and the build cache.\nAre you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    removed = []
    for rec in records.load_all(root):
        if rec["state"]["status"] not in ("running", "paused"):
            containers.remove(root, rec["id"], force=True, volumes=args.volumes)
            removed.append(rec["id"])
    if removed:
        print("Deleted Containers:")
        print("\n".join(removed))
    import importlib.util

    if importlib.util.find_spec("minibox.network") is not None:
        from minibox import network

        stale = network.prune_stale(root)
        if stale:
            print(f"Removed network leftovers of {len(stale)} crashed container(s)")
    from minibox.cgroups import prune_empty

    swept = prune_empty()
    if swept:
        print(f"Removed {len(swept)} empty cgroup(s) left by crashed runs")
    from minibox.build.prune import prune as prune_build

    entries, freed = prune_build(root)
    from minibox.image.humanize import size as human_size

    print(f"Total reclaimed space: {human_size(freed)} ({entries} build cache entries)")
    return 0


def main(args) -> int:
    if args.action == "df":
        return df(args.root, args.verbose)
    if args.action == "prune":
        return prune(args.root, args)
    from minibox.commands import info

    args.format = None
    return info.main(args)
