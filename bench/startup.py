"""Start-up and exec latency: minibox vs runc, crun and docker on the same busybox rootfs.

* ``run --rm --network none busybox true`` vs ``runc run`` / ``crun run`` of a
  bundle made from minibox's own config.json (see bench/peers.py) vs
  ``docker run --rm --network none`` on a private dockerd.
* the same with the default bridge network: ``minibox run --rm`` vs
  ``docker run --rm`` (docker on a bridge of its own, 10.215.0.0/24).
* ``exec true`` into a running ``sleep`` container: minibox / runc / docker.
"""

import os

from bench import peers
from bench.harness import Side, compare, run_argv

SECTION = "start-up"


def _oci_sides(ctx, args: list[str], tag: str) -> tuple[dict, dict]:
    """{name: (runtime, bundle) or absent reason} for runc and crun, bundles built once per args."""
    spec = ctx.mb.spec_for("--network", "none", ctx.image, *args)
    rootfs = os.path.join(ctx.work, "rootfs")
    if not os.path.isdir(os.path.join(rootfs, "bin")):
        peers.unpack_rootfs(ctx.tar, rootfs)
    ready, absent = {}, {}
    for name in ("runc", "crun"):
        rt = peers.OCIRuntime(name, os.path.join(ctx.work, f"state-{name}"))
        probe = os.path.join(ctx.work, f"bundle-{name}-probe")
        peers.write_bundle(probe, peers.bundle_spec(spec, rootfs, probe, ["true"], f"minibox-bench-{os.getpid()}-probe"))
        why = rt.probe(probe, f"mbbench-probe-{os.getpid()}-{name}")
        if why:
            absent[name] = why
            continue
        bundle = os.path.join(ctx.work, f"bundle-{name}-{tag}")
        cgroup = f"minibox-bench-{os.getpid()}-{name}-{tag}"
        peers.write_bundle(bundle, peers.bundle_spec(spec, rootfs, bundle, args, cgroup))
        ready[name] = (rt, bundle)
    return ready, absent


def startup_none(ctx) -> None:
    mb = ctx.mb
    ready, absent = _oci_sides(ctx, ["true"], "true")
    sides = [Side.argv("minibox", mb.argv("run", "--rm", "--network", "none", ctx.image, "true"))]
    for name in ("runc", "crun"):
        if name in ready:
            rt, bundle = ready[name]
            cid = f"mbbench-{os.getpid()}-{name}"
            sides.append(Side(name, lambda rt=rt, bundle=bundle, cid=cid: rt.run(bundle, cid)))
        else:
            sides.append(Side(name, absent=absent[name]))
    sides.append(_docker_side(ctx, "run", "--rm", "--network", "none", ctx.docker_image, "true"))
    out = compare(sides, ctx.rounds, ctx.warmup)
    e = ctx.results.add_comparison(SECTION, "run --rm --network none busybox true", out,
                                   detail="runc/crun run a bundle of minibox's own config.json; docker: private dockerd")
    ctx.results.add_headline("run --network none: minibox / runc", e["ratios"].get("minibox/runc"), 1.0,
                             out["runc"].get("absent") or out["runc"].get("failed", ""))
    ctx.results.add_headline("run --network none: minibox / docker", e["ratios"].get("minibox/docker"), 0.15,
                             out["docker"].get("absent") or out["docker"].get("failed", ""))


def startup_bridge(ctx) -> None:
    sides = [Side.argv("minibox", ctx.mb.argv("run", "--rm", ctx.image, "true")),
             _docker_side(ctx, "run", "--rm", ctx.docker_image, "true")]
    out = compare(sides, ctx.rounds, ctx.warmup)
    e = ctx.results.add_comparison(SECTION, "run --rm busybox true (default bridge)", out,
                                   detail=f"docker on its own bridge {peers.DOCKER_BRIDGE_CIDR}, iptables on")
    ctx.results.add_headline("run, default bridge: minibox / docker", e["ratios"].get("minibox/docker"), 0.25,
                             out["docker"].get("absent") or out["docker"].get("failed", ""))


def exec_latency(ctx) -> None:
    mb = ctx.mb
    state = {}

    def mb_up():
        state["mb"] = mb("run", "-d", "--network", "none", ctx.image, "sleep", "1000")

    sides = [Side("minibox", lambda: mb.run_argv("exec", state["mb"], "true"), setup=mb_up,
                  teardown=lambda: mb("rm", "-f", state["mb"]))]
    ready, absent = _oci_sides(ctx, ["sleep", "1000"], "sleep")
    if "runc" in ready:
        rt, bundle = ready["runc"]
        cid = f"mbbench-{os.getpid()}-exec"
        sides.append(Side("runc", lambda: run_argv(rt.cmd("exec", cid, "true")),
                          setup=lambda: rt.start_detached(bundle, cid), teardown=lambda: rt.remove(cid)))
    else:
        sides.append(Side("runc", absent=absent["runc"]))
    if ctx.docker is None:
        sides.append(Side("docker", absent=ctx.docker_absent))
    else:
        d = ctx.docker

        def d_up():
            state["d"] = d.docker("run", "-d", "--network", "none", ctx.docker_image, "sleep", "1000")

        sides.append(Side("docker", lambda: run_argv(d.argv("exec", state["d"], "true"), d.env), setup=d_up,
                          teardown=lambda: d.docker("rm", "-f", state["d"])))
    out = compare(sides, ctx.rounds, ctx.warmup)
    ctx.results.add_comparison(SECTION, "exec true into a running container", out)


def _docker_side(ctx, *args: str) -> Side:
    if ctx.docker is None:
        return Side("docker", absent=ctx.docker_absent)
    d = ctx.docker
    return Side.argv("docker", d.argv(*args), env=d.env)

