"""Fetch the logs of a container (stdout and stderr kept apart, as docker's json-file)."""

import json
import os
import sys
import time


def configure(p) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    p.add_argument("-n", "--tail", default="all", help='Number of lines to show from the end of the logs')
    p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    p.add_argument("--since", help="Show logs since timestamp (RFC 3339) or relative (e.g. 42m)")
    p.add_argument("container", metavar="CONTAINER")


def _since(value: str | None) -> float:
    if not value:
        return 0.0
    from minibox.errors import UsageError
    from minibox.image.humanize import parse_time

    units = {"s": 1, "m": 60, "h": 3600}
    if value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(value[:-1]) * units[value[-1]]
    if value.replace(".", "", 1).isdigit():
        return float(value)
    stamp = parse_time(value)
    if stamp is None:
        raise UsageError(f'invalid value for "since": {value}')
    return stamp


def _emit(entry: dict, timestamps: bool) -> None:
    stream = sys.stdout if entry.get("stream") == "stdout" else sys.stderr
    text = entry.get("log", "")
    stream.write(f"{entry.get('time', '')} {text}" if timestamps else text)
    stream.flush()


def main(args) -> int:
    from minibox.engine import records
    from minibox.engine.timefmt import parse_rfc3339
    from minibox.errors import UsageError

    cid = records.resolve(args.root, args.container)
    path = os.path.join(records.container_dir(args.root, cid), f"{cid}-json.log")
    since = _since(args.since)
    if args.tail != "all" and not args.tail.lstrip("-").isdigit():
        raise UsageError(f'invalid value for "tail": {args.tail}')
    tail = None if args.tail == "all" or int(args.tail) < 0 else int(args.tail)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        f = None
    entries = []
    if f is not None:
        for line in f:
            if line.endswith(b"\n"):
                entries.append(json.loads(line))
    if since:
        entries = [e for e in entries if parse_rfc3339(e["time"]) >= since]
    if tail is not None:
        entries = entries[-tail:] if tail else []
    for e in entries:
        _emit(e, args.timestamps)
    if not args.follow:
        return 0
    while True:
        if f is None:
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                f = None
        line = f.readline() if f is not None else b""
        if line.endswith(b"\n"):
            _emit(json.loads(line), args.timestamps)
            continue
        if f is not None and line:
            f.seek(-len(line), os.SEEK_CUR)
        try:
            status = records.load(args.root, cid)["state"]["status"]
        except Exception:  # noqa: BLE001 - removed while following
            return 0
        if status not in ("running", "paused", "created"):
            # One last read: the monitor writes the log before the record.
            rest = f.read() if f is not None else b""
            for raw in rest.splitlines():
                _emit(json.loads(raw), args.timestamps)
            return 0
        time.sleep(0.1)
