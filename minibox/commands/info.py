"""Display system-wide information (docker info's fields that minibox has)."""


def configure(p) -> None:
    p.add_argument("-f", "--format", help="Format output using a Go-template-like path")


def gather(root: str) -> dict:
    import os
    import platform

    from minibox import __version__
    from minibox.engine import records

    recs = records.load_all(root)
    count = lambda status: sum(1 for r in recs if r["state"]["status"] == status)  # noqa: E731
    from minibox.cgroups import detect

    cg_version = {"v2": "2", "v1": "1", "v2-hybrid-only": "2"}.get(detect(), "none")
    images = 0
    try:
        from minibox.image.store import ImageStore

        images = len(ImageStore(root).images())
    except Exception:  # noqa: BLE001 - info reports what it can
        pass
    return {
        "Containers": len(recs), "ContainersRunning": count("running"),
        "ContainersPaused": count("paused"), "ContainersStopped": count("exited") + count("created"),
        "Images": images, "Driver": "overlay2", "CgroupDriver": "cgroupfs",
        "CgroupVersion": cg_version, "KernelVersion": platform.release(),
        "OperatingSystem": _os_name(), "Architecture": platform.machine(),
        "NCPU": os.cpu_count(), "MemTotal": _mem_total(), "DockerRootDir": root,
        "ServerVersion": __version__, "DefaultRuntime": "minibox",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def main(args) -> int:
    info = gather(args.root)
    if args.format:
        from minibox.commands.inspect import render

        print(render(info, args.format))
        return 0
    print("Server:")
    print(f" Containers: {info['Containers']}")
    print(f"  Running: {info['ContainersRunning']}")
    print(f"  Paused: {info['ContainersPaused']}")
    print(f"  Stopped: {info['ContainersStopped']}")
    print(f" Images: {info['Images']}")
    print(f" Server Version: {info['ServerVersion']}")
    print(f" Storage Driver: {info['Driver']}")
    print("  Backing Filesystem: overlayfs layers (read-only) + per-container upper dir")
    print(f" Cgroup Driver: {info['CgroupDriver']}")
    print(f" Cgroup Version: {info['CgroupVersion']}")
    print(f" Default Runtime: {info['DefaultRuntime']}")
    print(" Security Options:")
    print("  seccomp")
    print("   Profile: builtin")
    print(f" Kernel Version: {info['KernelVersion']}")
    print(f" Operating System: {info['OperatingSystem']}")
    print(f" Architecture: {info['Architecture']}")
    print(f" CPUs: {info['NCPU']}")
    print(f" Total Memory: {info['MemTotal'] / (1 << 30):.2f}GiB")
    print(f" Docker Root Dir: {info['DockerRootDir']}")
    return 0
