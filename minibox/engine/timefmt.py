"""Timestamps the way docker prints them, without importing datetime on the hot path."""

import time


def now_rfc3339() -> str:
    """UTC now as RFC 3339 with nanoseconds: ``2026-11-27T01:53:49.123456789Z``."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_rfc3339(stamp: str) -> float:
    """Seconds since the epoch for a stamp made by :func:`now_rfc3339` (or without fraction)."""
    if not stamp or stamp.startswith("0001-"):
        return 0.0
    main, _, frac = stamp.rstrip("Z").partition(".")
    import calendar

    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


def human_duration(seconds: float) -> str:
    """docker's units.HumanDuration: "Less than a second", "3 seconds", "About a minute"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"
