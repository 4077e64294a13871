"""Build: the same Dockerfile and context under ``minibox build`` and ``docker build``, interleaved.

The context and Dockerfile are bench/build_bench.py's (300 app files, a
.dockerignore keeping out a big .git and node_modules). Three comparisons:
cold (``--no-cache``), warm with nothing changed (every step cached), and
warm with one app file changed (only the last COPY reruns). docker builds on
the private dockerd (with its bridge, which its RUN steps need) from the
same busybox rootfs, imported.
"""

import shutil
import tempfile
from pathlib import Path

from bench.build_bench import make_context
from bench.harness import Side, compare, run_argv

SECTION = "build"


def build(ctx, files: int = 300) -> None:
    mb = ctx.mb
    base = "bench-busybox:latest"
    mb("tag", ctx.image, base)
    dctx = Path(tempfile.mkdtemp(prefix="build-ctx-", dir=ctx.work))
    counter = [0]

    def touch():
        counter[0] += 1
        (dctx / "src" / "mod0000.py").write_text(f"# changed {counter[0]}\n")

    d = ctx.docker
    if d is not None:
        d.docker("tag", ctx.docker_image, base)
    env = None if d is None else d.env
    try:
        make_context(dctx, files, base)

        def sides(no_cache: bool, change: bool):
            def mb_build():
                if change:
                    touch()
                run_argv(mb.argv("build", "-q", "-t", "bench-app", *(["--no-cache"] if no_cache else []), str(dctx)))

            def d_build():
                if change:
                    touch()
                run_argv(d.argv("build", "-q", "-t", "minibox-bench-app", *(["--no-cache"] if no_cache else []),
                                str(dctx)), env)

            return [Side("minibox", mb_build),
                    Side("docker", d_build) if d else Side("docker", absent=ctx.docker_absent)]

        rounds = max(3, ctx.rounds // 2)
        for name, no_cache, change in (("cold (--no-cache)", True, False), ("warm, nothing changed", False, False),
                                       ("warm, one app file changed", False, True)):
            out = compare(sides(no_cache, change), rounds, 1)
            e = ctx.results.add_comparison(SECTION, f"build: {name}", out,
                                           detail="bench/build_bench.py's context; docker 20.10's default (classic) builder")
            if name.startswith("warm, nothing"):
                ctx.results.add_headline("build, all cached: minibox / docker", e["ratios"].get("minibox/docker"),
                                         1.0, out["docker"].get("absent") or out["docker"].get("failed", ""))
    finally:
        shutil.rmtree(dctx, ignore_errors=True)
