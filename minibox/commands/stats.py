"""Display a live stream of container(s) resource usage statistics."""

import sys
import time

INTERVAL = 1.0  # seconds between the two samples a CPU % needs, and between frames


def configure(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")


def _targets(args):
    """(id, name, record) for the containers to show; explicit refs must exist (NotFound → 125)."""
    from minibox.engine import records

    if args.containers:
        return [records.load(args.root, records.resolve(args.root, ref)) for ref in args.containers]
    recs = records.load_all(args.root)
    if not args.all:
        recs = [r for r in recs if r["state"]["status"] in ("running", "paused")]
    return sorted(recs, key=lambda r: r["created"])


def _cgroup(rec):
    if rec["state"]["status"] not in ("running", "paused") or not rec.get("cgroup_paths"):
        return None
    from minibox.cgroups import open_driver

    return open_driver().open(rec["cgroup_paths"])


def _sample(recs) -> dict:
    from minibox.cgroups import usage

    out = {}
    for rec in recs:
        cg = _cgroup(rec)
        try:
            out[rec["id"]] = usage.take(cg, rec["state"].get("pid")) if cg else None
        except OSError:
            out[rec["id"]] = None  # it exited between listing and reading
    return out


def _frame(args, recs, prev, cur, host_mem) -> str:
    from minibox.cgroups import usage

    rows = []
    for rec in recs:
        cid = rec["id"] if args.no_trunc else rec["id"][:12]
        rows.append(usage.row(cid, rec["name"], prev.get(rec["id"]), cur.get(rec["id"]), host_mem))
    return usage.table(rows)


def main(args) -> int:
    from minibox.cgroups import usage

    host_mem = usage.host_memory()
    recs = _targets(args)
    prev = _sample(recs)
    time.sleep(INTERVAL if any(prev.values()) else 0)
    tty = sys.stdout.isatty()
    try:
        while True:
            cur = _sample(recs)
            frame = _frame(args, recs, prev, cur, host_mem)
            if args.no_stream:
                print(frame)
                return 0
            # A terminal gets docker's redraw in place; a pipe gets one table per interval.
            sys.stdout.write(("\x1b[2J\x1b[H" if tty else "") + frame + "\n")
            sys.stdout.flush()
            prev = cur
            time.sleep(INTERVAL)
            if not args.containers:
                recs = _targets(args)  # follow containers started or stopped meanwhile
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
