"""List containers (docker's columns)."""

import time


def configure(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-l", "--latest", action="store_true", help="Show the latest created container")


def status_text(state: dict, now: float | None = None) -> str:
    """docker's STATUS column: "Up 3 seconds", "Exited (0) 2 seconds ago", "Created"."""
    from minibox.engine.timefmt import parse_rfc3339
    from minibox.image.humanize import duration as human_duration

    now = time.time() if now is None else now
    status = state["status"]
    if status in ("running", "paused"):
        up = human_duration(now - parse_rfc3339(state["started_at"]))
        return f"Up {up}" + (" (Paused)" if status == "paused" else "")
    if status == "exited":
        ago = human_duration(now - parse_rfc3339(state["finished_at"]))
        return f"Exited ({state['exit_code']}) {ago} ago"
    return status.capitalize()


def main(args) -> int:
    from minibox.engine import records
    from minibox.engine.timefmt import parse_rfc3339
    from minibox.image.humanize import duration as human_duration

    recs = records.load_all(args.root)
    if not args.all and not args.latest:
        recs = [r for r in recs if r["state"]["status"] in ("running", "paused")]
    recs.sort(key=lambda r: r["created"], reverse=True)
    if args.latest:
        recs = recs[:1]
    if args.quiet:
        for r in recs:
            print(r["id"] if args.no_trunc else r["id"][:12])
        return 0
    now = time.time()
    rows = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")]
    for r in recs:
        command = " ".join([r["path"]] + r["args"])
        if not args.no_trunc and len(command) > 20:
            command = command[:19] + "…"
        created = human_duration(now - parse_rfc3339(r["created"])) + " ago"
        rows.append((r["id"] if args.no_trunc else r["id"][:12], r["image"], f'"{command}"', created,
                     status_text(r["state"], now), _ports(r), r["name"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "   " + row[-1])
    return 0


def _ports(rec: dict) -> str:
    ports = (rec.get("network") or {}).get("ports") or []
    out = []
    for p in ports:
        out.append(f"{p.get('host_ip', '0.0.0.0')}:{p['host_port']}->{p['container_port']}/{p.get('proto', 'tcp')}")
    return ", ".join(out)
