"""Run one RUN instruction in a real container over the step's rootfs.

The container is made by the same runtime as ``minibox run`` (an OCI spec
through ``minibox.runtime.process``), with docker's defaults — its own PID,
mount, IPC and UTS namespaces, docker's capabilities, masked paths — but in
the host's network namespace with the host's resolv.conf and hosts bound
read-only, so a RUN reaches whatever the host can (package mirrors, a
registry on 127.0.0.1), like ``docker build --network host``. No record is
written and no cgroup is made: a build container lives exactly as long as
its step, and the caller unmounts its rootfs whatever happens.

stdout and stderr go through one pipe, line by line, to ``on_output``;
stdin is /dev/null.
"""

import os
import time

from minibox.runtime.paths import secure_join

HOSTNAME = "buildkitsandbox"
# Mount points the runtime creates in the rootfs when the image lacks them;
# the layer diff drops them again when they are still empty.
MOUNT_POINTS = ("proc", "sys", "dev", "dev/pts", "dev/shm", "dev/mqueue")
# Host files bound read-only into every step: never part of a layer.
HOST_FILES = ("etc/resolv.conf", "etc/hosts")


def missing_mount_points(rootfs: str) -> set[str]:
    """Which runtime mount points do not exist yet in ``rootfs`` (before the step runs)."""
    missing = set()
    for rel in MOUNT_POINTS:
        if not os.path.lexists(secure_join(rootfs, rel)):
            missing.add(rel)
    return missing


def build_spec(rootfs: str, argv: list[str], env: list[str], cwd: str, user: str) -> dict:
    """The OCI config for a build step: docker's defaults, host network, no cgroup."""
    from minibox.engine import options
    from minibox.runtime import spec as ocispec

    spec = ocispec.default_spec()
    passwd = _read(rootfs, "/etc/passwd")
    group = _read(rootfs, "/etc/group")
    # No USER means uid 0 even in an image without /etc/passwd (scratch), as in docker.
    proc_user = options.resolve_user(user or "0", passwd, group, [])
    env = list(env)
    keys = {e.partition("=")[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, f"PATH={ocispec.DEFAULT_PATH}")
    if "HOSTNAME" not in keys:
        env.append(f"HOSTNAME={HOSTNAME}")
    if "HOME" not in keys:
        env.append(f"HOME={options.home_of(proc_user['uid'], passwd)}")
    spec["process"].update(args=list(argv), env=env, cwd=cwd or "/", user=proc_user, terminal=False)
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["hostname"] = HOSTNAME
    linux = spec["linux"]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    linux.pop("cgroupsPath", None)
    for rel in HOST_FILES:
        host = "/" + rel
        if os.path.isfile(host):
            spec["mounts"].append({"destination": host, "type": "bind", "source": host,
                                   "options": ["rbind", "rprivate", "ro"]})
    return spec


def _read(rootfs: str, path: str) -> str:
    try:
        with open(secure_join(rootfs, path), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def run(rootfs: str, bundle: str, argv: list[str], env: list[str], cwd: str, user: str,
        on_output, trace=None) -> int:
    """Run ``argv`` in a container on ``rootfs``; return its exit code (128+N if killed by N).

    ``bundle`` is a private dir for the runtime; ``on_output(elapsed, line)``
    gets each output line (bytes, without the newline). A failure to start
    (no such executable, bad user...) raises the runtime's error.
    """
    from minibox.runtime import process

    spec = build_spec(rootfs, argv, env, cwd, user)
    devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    init = None
    started = time.monotonic()
    try:
        init = process.create(spec, bundle, stdio=(devnull, out_w, out_w), trace=trace)
        os.close(out_w)
        out_w = -1
        init.start()
        _pump(out_r, lambda line: on_output(time.monotonic() - started, line))
        _, status = os.waitpid(init.pid, 0)
        init = None
    except BaseException:
        if init is not None:
            init.abort()  # SIGKILL the init: its PID namespace takes every child with it
        raise
    finally:
        for fd in (devnull, out_r, out_w):
            if fd >= 0:
                os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _pump(fd: int, emit) -> None:
    buf = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            emit(line)
    if buf:
        emit(buf)
