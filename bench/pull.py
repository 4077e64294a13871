"""Pull + unpack from a registry on 127.0.0.1: ``minibox pull`` vs ``skopeo copy`` + ``umoci unpack``.

The image, the registry and each side's round are bench/bench_pull.py's;
here they run through the harness (interleaved, warm-up, medians) like
every other comparison. Absent when docker-registry, skopeo or umoci is.
"""

import shutil
import tempfile

from bench import bench_pull
from bench.harness import Side, SideFailed, compare

SECTION = "pull"


def pull(ctx) -> None:
    why = bench_pull._imgreg().missing_tools() or (None if shutil.which("umoci") else "umoci is not installed")
    if why:
        ctx.results.add_absent(SECTION, "pull + unpack from a loopback registry", why)
        return
    work = tempfile.mkdtemp(prefix="pull-", dir=ctx.work)
    reg = None
    try:
        reg, ref = bench_pull.build_image(work)

        def guard(fn):
            def run():
                try:
                    return fn(work, ref)
                except Exception as e:
                    raise SideFailed(str(e)) from e
            return run

        out = compare([Side("minibox", guard(bench_pull.minibox_round)),
                       Side("skopeo+umoci", guard(bench_pull.skopeo_umoci_round))], max(3, ctx.rounds // 2), 1)
        e = ctx.results.add_comparison(SECTION, "pull + unpack from a loopback registry", out,
                                       detail="3 layers: busybox, /usr/share/doc, shared libraries")
        ctx.results.add_headline("pull+unpack: minibox / skopeo+umoci", e["ratios"].get("minibox/skopeo+umoci"), 1.0)
    finally:
        if reg is not None:
            reg.stop()
        shutil.rmtree(work, ignore_errors=True)
