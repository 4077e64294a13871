"""The peers minibox is measured against: runc / crun bundles and a private dockerd.

runc and crun run an OCI bundle made from the very config.json minibox's
engine writes for ``run --network none busybox true`` (docker's namespaces,
capabilities, seccomp profile, masked paths and mounts), with the same
busybox rootfs unpacked into a plain directory: the work is the same, minus
what only minibox does (image store, overlay, container record, logs).

dockerd is never the machine's own: each ``Dockerd`` is a private daemon with
its own data root, exec root and unix socket under a temp dir, and — unless a
bridge is asked for — no bridge and no iptables rules. With ``bridge=True`` it
gets a bridge created here (unusual subnet 10.215.0.0/24, unique name) and
iptables on, but no ip_forward/FORWARD-policy change; on stop, the bridge and
every iptables rule and chain it added are removed.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import time

from bench.harness import SideFailed, run_argv

DOCKER_BRIDGE_CIDR = "10.215.0.1/24"
# What docker (and minibox) bind-mount over /etc in a --network none container.
_ETC_FILES = {"/etc/hostname": "minibox-bench\n",
              "/etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
              "/etc/resolv.conf": ""}


def wait_for(predicate, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


# --- OCI bundles for runc / crun ---------------------------------------------------------

def unpack_rootfs(busybox_tar: str, dest: str) -> str:
    os.makedirs(dest, exist_ok=True)
    subprocess.run(["tar", "-xf", busybox_tar, "-C", dest, "--numeric-owner"], check=True)
    return dest


def bundle_spec(minibox_spec: dict, rootfs: str, bundle: str, args: list[str], cgroup: str) -> dict:
    """minibox's config.json turned into a standalone bundle config for runc/crun.

    The rootfs is the unpacked directory; the /etc/hostname, hosts and
    resolv.conf bind mounts point at small files in the bundle (docker makes the
    same three mounts); the cgroup is a one-level relative path, which runc
    puts beneath its own cgroup and removes again on delete.
    """
    spec = json.loads(json.dumps(minibox_spec))
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["process"]["args"] = args
    spec["process"]["terminal"] = False
    spec.pop("hooks", None)
    # This host withholds CAP_SYS_RESOURCE: runc/crun fail on a hard limit above
    # ours, where minibox keeps the host's ceiling. Give them what minibox ends with.
    import resource

    for rl in spec["process"].get("rlimits", []):
        kind = getattr(resource, rl["type"], None)
        if kind is not None:
            hard = resource.getrlimit(kind)[1]
            if hard != resource.RLIM_INFINITY and rl["hard"] > hard:
                rl["hard"], rl["soft"] = hard, min(rl["soft"], hard)
    os.makedirs(bundle, exist_ok=True)
    for m in spec.get("mounts", []):
        dest = m.get("destination", "")
        if m.get("type") == "bind" and dest in _ETC_FILES:
            copy = os.path.join(bundle, os.path.basename(dest))
            with open(copy, "w") as f:
                f.write(_ETC_FILES[dest])
            m["source"] = copy
    spec["linux"]["cgroupsPath"] = cgroup
    return spec


def write_bundle(bundle: str, spec: dict) -> str:
    os.makedirs(bundle, exist_ok=True)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent=1)
    return bundle


class OCIRuntime:
    """``runc`` or ``crun`` with a private state dir (--root), so /run/runc is never touched."""

    def __init__(self, name: str, state_dir: str):
        self.name = name
        self.exe = shutil.which(name)
        self.state = state_dir

    def cmd(self, *args: str) -> list[str]:
        return [self.exe, "--root", self.state, *args]

    def probe(self, bundle: str, cid: str) -> str | None:
        """None when ``run`` of the bundle works here, else why this runtime is absent."""
        if not self.exe:
            return f"{self.name} is not installed (apt-get install {self.name})"
        proc = subprocess.run(self.cmd("run", "--bundle", bundle, cid), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            subprocess.run(self.cmd("delete", "-f", cid), capture_output=True, check=False)
            msg = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            return f"{self.name} run fails on this host: {msg[:200]}"
        return None

    def run(self, bundle: str, cid: str) -> None:
        run_argv(self.cmd("run", "--bundle", bundle, cid))

    def start_detached(self, bundle: str, cid: str) -> None:
        """``run -d``: the container keeps our stdio, so it gets a file, not a pipe we would wait on."""
        log = os.path.join(bundle, "detached.log")
        with open(log, "wb") as out:
            proc = subprocess.run(self.cmd("run", "-d", "--bundle", bundle, cid), stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=out, timeout=60, check=False)
        if proc.returncode != 0:
            with open(log, errors="replace") as f:
                raise SideFailed(f"{self.name} run -d -> exit {proc.returncode}: {f.read().strip()[-300:]}")

    def remove(self, cid: str) -> None:
        subprocess.run(self.cmd("kill", cid, "KILL"), capture_output=True, check=False)
        wait_for(lambda: b"stopped" in subprocess.run(self.cmd("state", cid), capture_output=True,
                                                      check=False).stdout or None, 5)
        subprocess.run(self.cmd("delete", "-f", cid), capture_output=True, check=False)


# --- a private dockerd --------------------------------------------------------------------

def _iptables_lines() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for table in ("filter", "nat"):
        proc = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False)
        out[table] = set(proc.stdout.splitlines()) if proc.returncode == 0 else set()
    return out


class Dockerd:
    """A private docker daemon under ``tmp``; ``start()`` returns None or why docker is absent."""

    def __init__(self, tmp: str, bridge: bool = False):
        self.tmp = tmp
        self.bridge = bridge
        self.bridge_name = f"mbbd{os.getpid() % 100000}"
        self.sock = os.path.join(tmp, "docker.sock")
        self.client = next((p for p in ("/usr/bin/docker", shutil.which("docker")) if p and os.path.exists(p)),
                           None)
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}")
        self.proc = None
        self.log = None
        self.before = None
        self.made_bridge = False

    def docker_cmd(self, *args: str) -> list[str]:
        return [self.client, *args]

    def _ok(self) -> bool:
        return subprocess.run(self.docker_cmd("version"), capture_output=True, env=self.env, timeout=30,
                              check=False).returncode == 0

    def start(self) -> str | None:
        if not self.client:
            return "the docker client is not installed (apt-get install docker.io)"
        if not shutil.which("dockerd"):
            return "dockerd is not installed (apt-get install docker.io)"
        if os.geteuid() != 0:
            return "starting a private dockerd needs root"
        os.makedirs(self.tmp, exist_ok=True)
        argv = ["dockerd", "-H", f"unix://{self.sock}", "--data-root", f"{self.tmp}/data",
                "--exec-root", f"{self.tmp}/exec", "--pidfile", f"{self.tmp}/dockerd.pid",
                "--userland-proxy=false", "--ip6tables=false"]
        if self.bridge:
            if not shutil.which("iptables"):
                return "iptables is not installed, docker's bridge needs it"
            self.before = _iptables_lines()
            r = subprocess.run(["ip", "link", "add", self.bridge_name, "type", "bridge"], capture_output=True,
                               text=True, check=False)
            if r.returncode != 0:
                return f"cannot create bridge {self.bridge_name}: {r.stderr.strip()}"
            self.made_bridge = True
            subprocess.run(["ip", "addr", "add", DOCKER_BRIDGE_CIDR, "dev", self.bridge_name], check=True)
            subprocess.run(["ip", "link", "set", self.bridge_name, "up"], check=True)
            # Our own bridge (not docker0), and no ip_forward / FORWARD policy change.
            argv += ["--bridge", self.bridge_name, "--iptables=true", "--ip-forward=false", "--ip-masq=true"]
        else:
            argv += ["--bridge", "none", "--iptables=false", "--ip-masq=false"]
        self.log = open(f"{self.tmp}/dockerd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_for(lambda: self.proc.poll() is not None or self._ok(), 60, 0.2) or self.proc.poll() is not None:
            with open(f"{self.tmp}/dockerd.log", errors="replace") as f:
                tail = f.read().strip().splitlines()[-1:] or [""]
            self.stop()
            return f"private dockerd did not come up: {tail[0][:200]}"
        return None

    def docker(self, *args: str, stdin: bytes | None = None, timeout: float = 300) -> str:
        r = subprocess.run(self.docker_cmd(*args), input=stdin, capture_output=True, env=self.env,
                           timeout=timeout, check=False)
        if r.returncode != 0:
            raise SideFailed(f"docker {' '.join(args)}: {r.stderr.decode(errors='replace').strip()[:300]}")
        return r.stdout.decode().strip()

    def argv(self, *args: str) -> list[str]:
        """A docker client command for harness.run_argv (with env=self.env)."""
        return self.docker_cmd(*args)

    def import_rootfs(self, tar: str, ref: str) -> None:
        with open(tar, "rb") as f:
            self.docker("import", "-c", 'CMD ["sh"]', "-", ref, stdin=f.read())

    def stop(self) -> None:
        """Stop the daemon, unmount what it left, remove its bridge and iptables additions."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                ids = self.docker("ps", "-aq", timeout=30).split()
                if ids:
                    self.docker("rm", "-f", *ids, timeout=120)
            except (SideFailed, subprocess.TimeoutExpired):
                pass
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None
        self._unmount_under(self.tmp)
        if self.made_bridge:
            subprocess.run(["ip", "link", "del", self.bridge_name], capture_output=True, check=False)
            self.made_bridge = False
        if self.before is not None:
            self._drop_iptables()
            self.before = None

    def _drop_iptables(self) -> None:
        """Delete the rules, then the chains, docker added (only ours: they name DOCKER or our bridge)."""
        after = _iptables_lines()
        for table, lines in after.items():
            added = [ln for ln in lines - self.before[table]
                     if "DOCKER" in ln or self.bridge_name in ln or "10.215.0." in ln]
            for ln in added:
                if ln.startswith("-A "):
                    subprocess.run(["iptables", "-t", table, "-D", *shlex.split(ln[3:])], capture_output=True,
                                   check=False)
            for ln in added:
                if ln.startswith("-N "):
                    chain = ln.split()[1]
                    subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True, check=False)
            for ln in added:
                if ln.startswith("-N "):
                    subprocess.run(["iptables", "-t", table, "-X", ln.split()[1]], capture_output=True,
                                   check=False)

    @staticmethod
    def _unmount_under(path: str) -> None:
        with open("/proc/self/mountinfo") as f:
            points = [ln.split()[4] for ln in f]
        for mp in sorted((p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
