"""The benchmark machinery: interleaved rounds, medians, pair ratios, results.

Absolute times on a shared machine drift by tens of percent from one minute
to the next, so a comparison is only honest when both sides run in the same
minutes: every comparison here runs its sides interleaved (A B C A B C ...)
after a warm-up, keeps the median of each side, and reports the ratio of
medians pair by pair (minibox / peer; below 1.0 means minibox is faster).

A side that cannot run on this machine (not installed, refused by the host)
is reported as ``absent`` with the reason, and a side that failed mid-run as
``failed``: neither is ever given a number, so no ratio is ever faked.

Nothing here knows about containers: a side is a name plus a callable (or an
argv) timed with ``time.perf_counter``; sections (bench/startup.py, ...) build
the sides and record what they measure in a :class:`Results`.
"""

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class SideFailed(Exception):
    """A side's command failed: the side is reported as failed, with this message."""


def run_argv(argv: list[str], env: dict | None = None, timeout: float = 120) -> None:
    """Run ``argv`` to completion, output discarded; SideFailed with its stderr tail when it fails."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SideFailed(f"{argv[0]}: {e}") from e
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise SideFailed(f"{' '.join(argv)} -> exit {proc.returncode}: {tail[0][:300]}")


@dataclass
class Side:
    """One contender: ``fn()`` does the timed work once (raise SideFailed on failure).

    When ``fn`` returns a float, that is the sample (for work that must be
    timed inside, e.g. a pull without the clean-up after it); otherwise the
    wall time around the call is.

    ``absent`` set means the side does not run here and says why. ``setup``
    and ``teardown`` run once around the whole comparison, untimed.
    """

    name: str
    fn: Callable[[], None] | None = None
    absent: str | None = None
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None

    @classmethod
    def argv(cls, name: str, argv: list[str], env: dict | None = None, **kw) -> "Side":
        return cls(name, lambda: run_argv(argv, env), **kw)


def summarize(samples: list[float]) -> dict:
    """Median plus spread, rounded to microseconds (timings) for a readable JSON."""
    return {"median": round(statistics.median(samples), 6), "min": round(min(samples), 6),
            "max": round(max(samples), 6), "n": len(samples),
            "samples": [round(s, 6) for s in samples]}


def compare(sides: list[Side], rounds: int, warmup: int = 1, clock=time.perf_counter) -> dict:
    """Time every present side ``rounds`` times, interleaved, after ``warmup`` untimed rounds.

    Returns {side name: summary | {"absent": why} | {"failed": why}} in the
    order given. A side that fails stops being run (its partial samples are
    dropped): a half-measured side would compare unlike with like.
    """
    out: dict[str, dict] = {}
    live = []
    for s in sides:
        if s.absent:
            out[s.name] = {"absent": s.absent}
            continue
        try:
            if s.setup:
                s.setup()
            live.append(s)
            out[s.name] = {}
        except SideFailed as e:
            out[s.name] = {"failed": f"setup: {e}"}
    samples: dict[str, list[float]] = {s.name: [] for s in live}
    try:
        for i in range(warmup + rounds):
            for s in list(live):
                t0 = clock()
                try:
                    value = s.fn()
                except SideFailed as e:
                    out[s.name] = {"failed": str(e)}
                    live.remove(s)
                    continue
                elapsed = clock() - t0
                if isinstance(value, float):
                    elapsed = value
                if i >= warmup:
                    samples[s.name].append(elapsed)
    finally:
        for s in sides:
            if s.teardown and s.name in out and "absent" not in out[s.name]:
                try:
                    s.teardown()
                except Exception as e:  # noqa: BLE001 - a teardown error must not hide the numbers
                    out[s.name].setdefault("teardown_error", str(e))
    for s in live:
        out[s.name] = summarize(samples[s.name])
    return out


def ratio(sides: dict, a: str, b: str) -> float | None:
    """median(a) / median(b), or None when either side has no median."""
    ma, mb = sides.get(a, {}).get("median"), sides.get(b, {}).get("median")
    if ma is None or mb is None or mb == 0:
        return None
    return round(ma / mb, 4)


def side_status(summary: dict) -> str:
    """"absent: why" / "failed: why" / "" (measured)."""
    for key in ("absent", "failed"):
        if key in summary:
            return f"{key}: {summary[key]}"
    return ""


def machine() -> dict:
    """What the numbers were measured on (for the README and for comparing runs)."""
    info = {"kernel": platform.release(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_gb"] = round(int(f.readline().split()[1]) / 1048576, 1)
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return info


@dataclass
class Results:
    """Everything one ``python -m bench`` run measured, in the order measured.

    ``benchmarks`` holds one entry per measurement: comparisons (``sides`` +
    ``ratios``), series (``points``) and plain values. ``headline`` is the
    short list of ratios with targets that the table ends with and the chart
    draws.
    """

    meta: dict = field(default_factory=dict)
    benchmarks: list = field(default_factory=list)
    headline: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def add_comparison(self, section: str, name: str, sides: dict, base: str = "minibox",
                       unit: str = "s", detail: str = "") -> dict:
        """Record a compare() result and the ratio of ``base`` to every other side."""
        ratios = {f"{base}/{other}": ratio(sides, base, other) for other in sides if other != base}
        entry = {"section": section, "name": name, "kind": "comparison", "unit": unit,
                 "detail": detail, "base": base, "sides": sides, "ratios": ratios}
        self.benchmarks.append(entry)
        return entry

    def add_series(self, section: str, name: str, points: list[dict], unit: str, detail: str = "") -> dict:
        """Record a series (e.g. per-container time at 1/10/50/100): points are dicts with "x"."""
        entry = {"section": section, "name": name, "kind": "series", "unit": unit, "detail": detail,
                 "points": points}
        self.benchmarks.append(entry)
        return entry

    def add_value(self, section: str, name: str, value, unit: str, detail: str = "") -> dict:
        entry = {"section": section, "name": name, "kind": "value", "unit": unit, "detail": detail,
                 "value": value}
        self.benchmarks.append(entry)
        return entry

    def add_absent(self, section: str, name: str, why: str) -> dict:
        """A whole benchmark that could not run here."""
        entry = {"section": section, "name": name, "kind": "absent", "absent": why}
        self.benchmarks.append(entry)
        return entry

    def add_headline(self, label: str, value: float | None, target: float | None, why_absent: str = "") -> None:
        """A ratio the issue sets a target for (met when value <= target)."""
        met = None if value is None or target is None else value <= target
        self.headline.append({"label": label, "ratio": value, "target": target, "met": met,
                              **({"absent": why_absent} if value is None and why_absent else {})})

    def to_dict(self) -> dict:
        return {"meta": self.meta, "headline": self.headline, "benchmarks": self.benchmarks,
                "notes": self.notes}

    def write_json(self, path: str) -> None:
        """Atomically (tmp + fsync + rename): a reader never sees half a results file."""
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _fmt(value, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 10 else f"{value:.2f} s"
    if unit == "kB":
        return f"{value:,.0f} kB"
    if unit == "bytes":
        return f"{value / 1024:,.0f} KiB"
    if isinstance(value, float):
        return f"{value:.3f} {unit}".strip()
    return f"{value} {unit}".strip()


def table(results: Results) -> str:
    """The human table: one line per side/point/value, then the headline ratios."""
    lines = []
    w = 52
    lines.append(f"{'benchmark':<{w}} {'side':<22} {'median':>12} {'ratio':>8}")
    lines.append("-" * (w + 45))
    for b in results.benchmarks:
        title = f"[{b['section']}] {b['name']}"[:w]
        if b["kind"] == "comparison":
            for side, summary in b["sides"].items():
                r = "" if side == b["base"] else b["ratios"].get(f"{b['base']}/{side}")
                status = side_status(summary)
                med = status if status else _fmt(summary.get("median"), b["unit"])
                rtxt = "" if r == "" else ("-" if r is None else f"{r:.3f}")
                if status:
                    lines.append(f"{title:<{w}} {side:<22} {med}")
                else:
                    lines.append(f"{title:<{w}} {side:<22} {med:>12} {rtxt:>8}")
                title = ""
        elif b["kind"] == "series":
            for p in b["points"]:
                extra = "  ".join(f"{k}={_fmt(v, b['unit']) if isinstance(v, float) else v}"
                                  for k, v in p.items() if k not in ("x", "value"))
                lines.append(f"{title:<{w}} {('x=' + str(p['x'])):<22} {_fmt(p.get('value'), b['unit']):>12}"
                             f"   {extra}")
                title = ""
        elif b["kind"] == "value":
            lines.append(f"{title:<{w}} {'':<22} {_fmt(b['value'], b['unit']):>12}   {b.get('detail', '')[:60]}")
        else:
            lines.append(f"{title:<{w}} absent: {b['absent']}")
    if results.headline:
        lines.append("")
        lines.append(f"{'headline ratio (minibox / peer)':<{w}} {'value':>8} {'target':>8}  verdict")
        for h in results.headline:
            if h["ratio"] is None:
                verdict = f"absent: {h.get('absent', 'peer or minibox not measured')}"
                lines.append(f"{h['label']:<{w}} {'-':>8} {h['target'] or '-':>8}  {verdict}")
            else:
                verdict = "met" if h["met"] else ("NOT MET" if h["met"] is False else "")
                lines.append(f"{h['label']:<{w}} {h['ratio']:>8.3f} {h['target'] or '-':>8}  {verdict}")
    for n in results.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)
