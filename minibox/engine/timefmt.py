"""Timestamps the way docker prints them, without importing datetime on the hot path."""

import time


def now_rfc3339() -> str:
    """UTC now as RFC 3339 with nanoseconds: ``2026-11-27T01:53:49.123456789Z``."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_rfc3339(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 stamp; 0.0 for docker's zero time or junk."""
    if not stamp or stamp.startswith("0001-"):
        return 0.0
    from minibox.image.humanize import parse_time

    return parse_time(stamp) or 0.0
