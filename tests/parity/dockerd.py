"""A private docker daemon for the parity tests, and everything it needs torn down.

The daemon is Debian's docker.io ``dockerd`` on its own socket, data root and
exec root (so its own containerd) in a temp dir; nothing of the host's
docker, if any, is used or changed:

- networking: a bridge of our own (``mbpd`` + random hex) on a random
  10.216.x.0/24, given to dockerd with ``--bridge``; ``--iptables=false
  --ip-masq=false --ip6tables=false`` so dockerd writes no firewall rule at
  all (the labs only need container <-> container and host -> published
  port, which the bridge and docker-proxy give without NAT);
- cgroups: ``--cgroup-parent`` is this process's deepest own cgroup path
  plus a unique name. On a hybrid v1 host where we sit in
  ``memory:/a/b`` and ``cpu:/``, the containers land in ``/a/b/mbparity-…``
  in every hierarchy: beneath our own cgroup in each. (A relative parent
  is not enough: dockerd's shims resolve it from the hierarchy root.) The
  intermediate dirs dockerd makes where they did not exist are removed
  again at teardown;
- teardown removes the containers, stops dockerd and its containerd (by the
  pids we started), unmounts what is left under the temp dir, deletes the
  bridge, the cgroup parent dirs and the temp dir.
"""

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time


def docker_client() -> str | None:
    """Debian's client first (it matches the daemon's API), else any docker on PATH."""
    if os.path.exists("/usr/bin/docker"):
        return "/usr/bin/docker"
    return shutil.which("docker")


def why_unavailable() -> str | None:
    """None when a private dockerd can be started here, else the reason to skip."""
    if os.geteuid() != 0:
        return "the parity tests need root (they start a private dockerd)"
    if not shutil.which("dockerd"):
        return "dockerd is not installed (apt-get install docker.io)"
    if not docker_client():
        return "the docker client is not installed (apt-get install docker.io)"
    if not shutil.which("ip"):
        return "iproute2 is not installed"
    return None


def _own_cgroups() -> dict[str, str]:
    """{hierarchy mount point: this process's cgroup path in it} (v1 and v2)."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            own[ctrls] = path
    result = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, opts = fields[sep + 1], fields[sep + 3].split(",")
            mnt = fields[4]
            if fstype == "cgroup2":
                if "" in own:
                    result[mnt] = own[""]
            elif fstype == "cgroup":
                for ctrls, path in own.items():
                    names = [c.removeprefix("name=") for c in ctrls.split(",") if c]
                    if names and all(n in opts or f"name={n}" in opts for n in names):
                        result[mnt] = path
    return result


class Dockerd:
    """One private dockerd; ``start()`` returns None or why it could not start."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="mbp-", dir="/tmp")  # short: sockets live below it
        os.chmod(self.tmp, 0o700)
        self.sock = os.path.join(self.tmp, "docker.sock")
        self.bridge = f"mbpd{os.urandom(3).hex()}"
        self.subnet_octet = random.randint(1, 254)
        self.gateway = f"10.216.{self.subnet_octet}.1"
        own = _own_cgroups()
        deepest = max(own.values(), key=len, default="/")
        self.cgroup_parent = os.path.join(deepest, f"mbparity-{os.urandom(4).hex()}")
        # Which ancestors of the parent exist now, per hierarchy: the others are dockerd's.
        self._cgroup_dirs = {}
        for mnt in own:
            path = os.path.dirname(self.cgroup_parent)
            missing = []
            while path != "/" and not os.path.isdir(os.path.join(mnt, path.lstrip("/"))):
                missing.append(os.path.join(mnt, path.lstrip("/")))
                path = os.path.dirname(path)
            self._cgroup_dirs[mnt] = missing  # deepest first
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(self.tmp, "dockerd.log")
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_BUILDKIT="1")
        self.env.pop("DOCKER_CONTEXT", None)
        self.client = docker_client()

    # -------------------------------------------------------------- lifecycle

    def start(self) -> str | None:
        for _ in range(20):
            r = subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"],
                               capture_output=True, text=True)
            if r.returncode == 0:
                break
            self.bridge = f"mbpd{os.urandom(3).hex()}"
        else:
            return f"cannot create a bridge: {r.stderr.strip()}"
        subprocess.run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed right after Popen
        try:
            self.proc = subprocess.Popen(
                ["dockerd", "-H", f"unix://{self.sock}",
                 "--data-root", os.path.join(self.tmp, "data"),
                 "--exec-root", os.path.join(self.tmp, "exec"),
                 "--pidfile", os.path.join(self.tmp, "dockerd.pid"),
                 "--bridge", self.bridge, "--iptables=false", "--ip-masq=false", "--ip6tables=false",
                 "--cgroup-parent", self.cgroup_parent, "--exec-opt", "native.cgroupdriver=cgroupfs",
                 "--storage-driver", "overlay2"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"dockerd exited with {self.proc.returncode}: {self._log_tail()}"
            if self("version", timeout=10).returncode == 0:
                return None
            time.sleep(0.3)
        return f"dockerd did not answer within 60 s: {self._log_tail()}"

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-3:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Remove every container, stop the daemon and its containerd, remove what they left."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self("ps", "-aq", timeout=30).stdout.split()
            if ids:
                self("rm", "-f", *ids, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self._kill_leftovers(self.proc.pid)
        self._unmount_below(self.tmp)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        self._remove_cgroup_parent()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _kill_leftovers(self, sid: int) -> None:
        """containerd and shims we started (our session id), should dockerd have left them."""
        for _ in range(50):
            left = []
            for name in os.listdir("/proc"):
                if name.isdigit():
                    try:
                        if os.getsid(int(name)) == sid:
                            left.append(int(name))
                    except (ProcessLookupError, PermissionError):
                        pass
            if not left:
                return
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    @staticmethod
    def _unmount_below(path: str) -> None:
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f]
        for mnt in sorted((m for m in mounts if m.startswith(path + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", mnt], capture_output=True)

    def _remove_cgroup_parent(self) -> None:
        for mnt, missing in self._cgroup_dirs.items():
            parent = os.path.join(mnt, self.cgroup_parent.lstrip("/"))
            if os.path.isdir(parent):
                for dirpath, _dirs, _files in sorted(os.walk(parent), key=lambda t: -len(t[0])):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
            for path in missing:  # ancestors dockerd created, deepest first
                try:
                    os.rmdir(path)
                except OSError:
                    break

    # -------------------------------------------------------------- the client

    def __call__(self, *args: str, timeout: float = 120, input: str | None = None,
                 check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.client, *args], capture_output=True, text=True, timeout=timeout,
                              input=input, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc
