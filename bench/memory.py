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


def monitor_vs_shim(ctx, n: int = 3) -> None:
    mb = ctx.mb
    sides = {}
    got = []
    ids = []
    try:
        for _ in range(n):
            cid = mb("run", "-d", "--network", "none", ctx.image, "sleep", "1000")
            ids.append(cid)
            pid = wait_for(lambda cid=cid: find_process("minibox-monitor", cid), 10)
            if pid:
                got.append(pid)
        time.sleep(SETTLE_S)
        samples = [memory(p) for p in got]
    finally:
        if ids:
            mb("rm", "-f", *ids)
    sides["minibox"] = ({"median": _median_of(samples, "rss_kb"), "rss_anon_kb": _median_of(samples, "rss_anon_kb"),
                         "n": len(samples), "process": "minibox-monitor"} if samples
                        else {"failed": "no minibox-monitor process names the container"})
    if ctx.docker is None:
        sides["docker"] = {"absent": ctx.docker_absent}
    else:
        d = ctx.docker
        dids, pids = [], []
        try:
            for _ in range(n):
                cid = d.docker("run", "-d", "--network", "none", ctx.docker_image, "sleep", "1000")
                dids.append(cid)
                pid = wait_for(lambda cid=cid: find_process("containerd-shim-runc-v2", cid), 30)
                if pid:
                    pids.append(pid)
            time.sleep(SETTLE_S)
            dsamples = [memory(p) for p in pids]
        finally:
            if dids:
                d.docker("rm", "-f", *dids)
        sides["docker"] = ({"median": _median_of(dsamples, "rss_kb"), "rss_anon_kb": _median_of(dsamples, "rss_anon_kb"),
                            "n": len(dsamples), "process": "containerd-shim-runc-v2"} if dsamples
                           else {"failed": "no containerd-shim-runc-v2 process names the container"})
    e = ctx.results.add_comparison(SECTION, "RSS of the process kept per detached container", sides, unit="kB",
                                   detail="VmRSS; rss_anon_kb is the private share")
    ctx.results.add_headline("monitor RSS: minibox / containerd-shim", e["ratios"].get("minibox/docker"), 1.0,
                             sides["docker"].get("absent") or sides["docker"].get("failed", ""))
