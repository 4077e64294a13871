"""docker's human-readable sizes, ages and column layout (pure)."""

import time


def size(n: int) -> str:
    """Decimal units with 3 significant digits, as docker prints them: ``4.26MB``."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    value = float(n)
    i = 0
    while value >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{value:.3g}{units[i]}"


def parse_time(rfc3339: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 UTC time (fractions and offsets tolerated)."""
    import calendar

    if not rfc3339:
        return None
    text = rfc3339.strip()
    main = text[:19]
    try:
        t = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    rest = text[19:]
    if rest.startswith("."):
        digits = ""
        for ch in rest[1:]:
            if not ch.isdigit():
                break
            digits += ch
        rest = rest[1 + len(digits):]
    if rest and rest[0] in "+-" and len(rest) >= 6:
        sign = 1 if rest[0] == "+" else -1
        t -= sign * (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60)
    return t


def duration(seconds: float) -> str:
    """docker's units.HumanDuration: ``Less than a second``, ``2 minutes``, ``3 weeks``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def ago(rfc3339: str) -> str:
    t = parse_time(rfc3339)
    if t is None:
        return "N/A"
    return duration(max(0.0, time.time() - t)) + " ago"


def table(rows: list[list[str]]) -> str:
    """Columns padded like docker's tabwriter (3 spaces between columns)."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(r[:-1])] + [r[-1]]
        out.append("   ".join(cells).rstrip() + "\n")
    return "".join(out)
