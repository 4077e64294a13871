"""``python -m bench``: every benchmark, minibox next to runc, crun and docker, in one run.

    python -m bench [--rounds 10] [--warmup 2] [--sections startup,exec,...] [--install-peers]

Writes bench/results/results.json, prints the table, draws
bench/results/headline.png. Needs root (containers, overlayfs, a private
dockerd). Peers that are not installed or cannot run here are reported as
absent with the reason. Order: the sections that use docker without a bridge
run on one private dockerd; the bridge start-up and the build (whose RUN
steps need a network) on a second one, with its own bridge; then the
minibox-only scaling sections and the pull.
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

from bench import chart, common, harness, peers

SECTIONS = ("startup", "exec", "memory", "disk", "bridge", "build", "scaling", "layers", "pull")
NO_BRIDGE = ("startup", "exec", "memory", "disk")
WITH_BRIDGE = ("bridge", "build")
APT_PEERS = ("runc", "crun", "docker.io")


def install_peers() -> str:
    """apt-get install the peers that are missing, when we may; a note either way."""
    missing = [p for p in APT_PEERS
               if subprocess.run(["dpkg", "-s", p], capture_output=True, check=False).returncode != 0]
    if not missing:
        return "runc, crun and docker.io were already installed"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"not installed (needs root and apt-get): {' '.join(missing)}; they are reported absent"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env,
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return f"apt-get install {' '.join(missing)} failed ({r.stderr.strip()[-200:]}); they are reported absent"
    return f"installed from Debian: {' '.join(missing)}"


def _section(ctx, name: str) -> None:
    from bench import build, memory, pull, scaling, startup

    fn = {"startup": startup.startup_none, "exec": startup.exec_latency, "memory": memory.monitor_vs_shim,
          "disk": scaling.disk, "bridge": startup.startup_bridge, "build": build.build,
          "scaling": scaling.containers, "layers": scaling.layers, "pull": pull.pull}[name]
    t = time.monotonic()
    ctx.log(f"section {name} ...")
    try:
        fn(ctx)
    except Exception as e:  # noqa: BLE001 - one broken section must not lose the others' numbers
        ctx.results.add_absent(name, f"section {name}", f"failed: {type(e).__name__}: {e}")
        ctx.log(f"section {name} failed:\n{traceback.format_exc()}")
    ctx.log(f"section {name} done in {time.monotonic() - t:.0f} s")


def _with_docker(ctx, bridge: bool, names: list[str], use_docker: bool) -> None:
    if not names:
        return
    d = None
    if use_docker:
        d = peers.Dockerd(os.path.join(ctx.work, "docker-bridge" if bridge else "docker"), bridge=bridge)
        why = d.start()
        if why is None:
            try:
                d.import_rootfs(ctx.tar, ctx.docker_image)
            except harness.SideFailed as e:
                why = f"docker import of the busybox rootfs failed: {e}"
        if why:
            ctx.log(f"docker absent: {why}")
            d.stop()
            d = None
            ctx.docker_absent = why
    else:
        ctx.docker_absent = "--no-docker"
    ctx.docker = d
    try:
        for name in names:
            _section(ctx, name)
    finally:
        ctx.docker = None
        if d is not None:
            d.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds per comparison (default %(default)s)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default %(default)s)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {','.join(SECTIONS)}")
    ap.add_argument("--workers", type=int, default=8, help="parallel `run -d` in the scaling section")
    ap.add_argument("--minibox", default=None, help="the minibox command (default: the script next to this "
                                                    "Python, else `python -m minibox`; or $MINIBOX_BENCH_CMD)")
    ap.add_argument("--no-docker", action="store_true", help="leave docker out (reported absent)")
    ap.add_argument("--install-peers", action="store_true", help="apt-get install runc crun docker.io if missing")
    ap.add_argument("--out", default=str(common.REPO / "bench" / "results"), help="results directory")
    args = ap.parse_args(argv)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    if os.geteuid() != 0:
        print("bench: needs root (containers, overlayfs, a private dockerd)", file=sys.stderr)
        return 1

    results = harness.Results()
    if args.install_peers:
        results.notes.append(f"peers: {install_peers()}")
    work = tempfile.mkdtemp(prefix="minibox-bench-", dir="/var/tmp")
    root = common.private_root()
    mb = common.Minibox(common.minibox_command(args.minibox), root)
    started = datetime.datetime.now(datetime.UTC)
    try:
        tar = common.busybox_tar(work)
        mb("import", "-c", 'CMD ["sh"]', tar, "busybox:latest")
        version = subprocess.run(mb.argv("version"), capture_output=True, text=True, check=False).stdout
        results.meta = {"started": started.isoformat(timespec="seconds"), "machine": harness.machine(),
                        "rounds": args.rounds, "warmup": args.warmup, "minibox_cmd": mb.cmd,
                        "minibox_version": version.strip().splitlines()[:3],
                        "peers": {p: _version_of(p) for p in ("runc", "crun", "dockerd")}}
        if len(mb.cmd) > 1 and os.environ.get("PYTHONDONTWRITEBYTECODE"):
            results.notes.append("minibox runs as `python -m minibox` with PYTHONDONTWRITEBYTECODE set: without "
                                 "cached bytecode every run compiles its modules again (~170 ms here); "
                                 "`make install` first for representative numbers")
        ctx = common.Context(mb, results, args.rounds, args.warmup, work, tar, args.workers)
        _with_docker(ctx, False, [s for s in wanted if s in NO_BRIDGE], not args.no_docker)
        _with_docker(ctx, True, [s for s in wanted if s in WITH_BRIDGE], not args.no_docker)
        for name in wanted:
            if name not in NO_BRIDGE and name not in WITH_BRIDGE:
                ctx.docker_absent = "not used in this section"
                _section(ctx, name)
    finally:
        mb.remove_all()
        common.remove_root(root)
        common.remove_root(work)
    results.meta["seconds"] = round((datetime.datetime.now(datetime.UTC) - started).total_seconds())
    os.makedirs(args.out, exist_ok=True)
    results.write_json(os.path.join(args.out, "results.json"))
    png = os.path.join(args.out, "headline.png")
    renderer = chart.write(results.headline, png)
    print(harness.table(results))
    print(f"\nresults: {os.path.join(args.out, 'results.json')}\nchart:   {png} ({renderer})")
    return 0


def _version_of(exe: str) -> str | None:
    if not shutil.which(exe):
        return None
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return (r.stdout.strip().splitlines() or [""])[0]


if __name__ == "__main__":
    sys.exit(main())
