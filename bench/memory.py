"""Memory kept per detached container: minibox's monitor vs docker's containerd-shim-runc-v2.

The measuring is bench/bench_monitor_rss.py's (VmRSS and RssAnon of the
process that stays behind, read after it settles); here both sides run on
the benchmark's private minibox root and private dockerd, several
containers each, and the medians are compared.
"""

import statistics
import time

from bench.bench_monitor_rss import SETTLE_S, find_process, memory, wait_for

SECTION = "memory"


def _median_of(samples: list[dict], key: str):
    vals = [s[key] for s in samples if key in s]
    return round(statistics.median(vals)) if vals else None


def _kept_process_rss(run_detached, remove, process: str, n: int, timeout: float) -> dict:
    """Start ``n`` detached containers, find the ``process`` left per container, read its memory."""
    ids, pids = [], []
    try:
        for _ in range(n):
            cid = run_detached()
            ids.append(cid)
            pid = wait_for(lambda cid=cid: find_process(process, cid), timeout)
            if pid:
                pids.append(pid)
        time.sleep(SETTLE_S)
        samples = [memory(p) for p in pids]
    finally:
        if ids:
            remove(ids)
    if not samples:
        return {"failed": f"no {process} process names the container"}
    return {"median": _median_of(samples, "rss_kb"), "rss_anon_kb": _median_of(samples, "rss_anon_kb"),
            "n": len(samples), "process": process}


def monitor_vs_shim(ctx, n: int = 3) -> None:
    mb = ctx.mb
    sides = {"minibox": _kept_process_rss(
        lambda: mb("run", "-d", "--network", "none", ctx.image, "sleep", "1000"),
        lambda ids: mb("rm", "-f", *ids), "minibox-monitor", n, 10)}
    if ctx.docker is None:
        sides["docker"] = {"absent": ctx.docker_absent}
    else:
        d = ctx.docker
        sides["docker"] = _kept_process_rss(
            lambda: d.docker("run", "-d", "--network", "none", ctx.docker_image, "sleep", "1000"),
            lambda ids: d.docker("rm", "-f", *ids), "containerd-shim-runc-v2", n, 30)
    e = ctx.results.add_comparison(SECTION, "RSS of the process kept per detached container", sides, unit="kB",
                                   detail="VmRSS; rss_anon_kb is the private share")
    ctx.results.add_headline("monitor RSS: minibox / containerd-shim", e["ratios"].get("minibox/docker"), 1.0,
                             sides["docker"].get("absent") or sides["docker"].get("failed", ""))
