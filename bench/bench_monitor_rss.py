"""Memory kept per detached container: minibox's monitor vs containerd-shim-runc-v2.

    python3 bench/bench_monitor_rss.py [--root DIR] [--no-docker] [--json FILE]

The acceptance bar: the process that waits for a detached container must
not use more resident memory than docker's containerd-shim-runc-v2. Both
sides run the same kind of container (`sleep 1000`, no network) and VmRSS of
the waiting process is read from /proc once it has settled.

minibox side: `minibox run -d` when the installed minibox has it (the
monitor is then found by its command line, which names the container's log
file); otherwise the monitor alone, started exactly as the engine does
(fork, setsid, subreaper, container as its child, exec of the monitor).

docker side: the running dockerd, or, when none answers and dockerd is
installed, a private one started for this run with its own data/exec roots,
no bridge and no iptables rules (other work on this machine keeps its
network), stopped and removed afterwards. The image is a one-binary busybox
root made here and `docker import`ed, so nothing is pulled. A side that
cannot run is reported as absent, with the reason.
"""

import argparse
import ctypes
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

# A source checkout works too (after `python3 -m minibox._build_libexec`);
# an installed minibox still comes first.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BUSYBOX = "/bin/busybox"
SETTLE_S = 1.0
PR_SET_CHILD_SUBREAPER = 36


def memory(pid: int) -> dict:
    """VmRSS (the bar) and RssAnon (the process's private share) in kB.

    VmRSS also counts the mapped pages of the executable, which the page
    cache shares between every copy; RssAnon is what each extra container
    really costs.
    """
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                out["rss_kb" if key == "VmRSS" else "rss_anon_kb"] = int(value.split()[0])
    if "rss_kb" not in out:
        raise RuntimeError(f"/proc/{pid}/status: no VmRSS")
    return out


def find_process(*needles: str) -> int | None:
    """The pid whose command line contains every needle."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmdline for n in needles):
            return int(entry)
    return None


def wait_for(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return None


# --- minibox -----------------------------------------------------------------

def minibox_run_d(root: str) -> dict | None:
    """RSS of the monitor of `minibox run -d`, or None when run -d is not there yet."""
    exe = shutil.which("minibox")
    if not exe:
        return None
    r = subprocess.run([exe, "--root", root, "run", "-d", "--network", "none", "busybox",
                        "sleep", "1000"], check=False, capture_output=True, text=True, timeout=60)
    cid = r.stdout.strip()
    if r.returncode != 0 or len(cid) != 64:
        return None
    try:
        pid = wait_for(lambda: find_process("minibox-monitor", cid), 10)
        if pid is None:
            return None
        time.sleep(SETTLE_S)
        return {"how": "minibox run -d", "pid": pid, **memory(pid)}
    finally:
        subprocess.run([exe, "--root", root, "rm", "-f", cid], check=False, capture_output=True, timeout=60)


def monitor_alone(tmp: str) -> dict:
    """RSS of the monitor watching `busybox sleep 1000`, started the engine's way."""
    from minibox import libexec

    monitor = libexec.path(libexec.MONITOR)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    info_r, info_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            cpid = os.fork()
            if cpid == 0:
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                os.execv(BUSYBOX, [BUSYBOX, "sleep", "1000"])
            os.write(info_w, str(cpid).encode())
            for fd in (out_r, err_r):
                os.set_inheritable(fd, True)
            for fd in (out_w, err_w, info_r, info_w):
                os.close(fd)
            os.execv(monitor, [monitor, "--pid", str(cpid), "--log", f"{tmp}/ctr-json.log",
                               "--exit-file", f"{tmp}/exit.json", "--stdout-fd", str(out_r),
                               "--stderr-fd", str(err_r)])
        finally:
            os._exit(120)
    for fd in (out_r, out_w, err_r, err_w, info_w):
        os.close(fd)
    cpid = int(os.read(info_r, 32))
    os.close(info_r)
    try:
        time.sleep(SETTLE_S)
        return {"how": "minibox-monitor alone (fork/setsid/subreaper/exec)", "pid": pid,
                **memory(pid)}
    finally:
        os.kill(pid, signal.SIGTERM)  # forwarded to the container
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        try:
            os.kill(cpid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- docker ------------------------------------------------------------------

class Dockerd:
    """A docker daemon to talk to: the running one, or a private one started here."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.proc = None
        self.env = dict(os.environ)

    def _ok(self) -> bool:
        r = subprocess.run(["docker", "info"], check=False, capture_output=True, env=self.env, timeout=30)
        return r.returncode == 0

    def start(self) -> str | None:
        """None when docker answers, else why it is absent."""
        if not shutil.which("docker"):
            return "docker client not installed"
        if self._ok():
            return None
        if not shutil.which("dockerd"):
            return "no dockerd answers and dockerd is not installed"
        if os.geteuid() != 0:
            return "no dockerd answers and starting one needs root"
        sock = f"{self.tmp}/docker.sock"
        self.env["DOCKER_HOST"] = f"unix://{sock}"
        self.log = open(f"{self.tmp}/dockerd.log", "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            ["dockerd", "--host", f"unix://{sock}", "--data-root", f"{self.tmp}/data",
             "--exec-root", f"{self.tmp}/exec", "--pidfile", f"{self.tmp}/dockerd.pid",
             "--bridge", "none", "--iptables=false", "--ip6tables=false",
             "--storage-driver", "vfs"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_for(lambda: self.proc.poll() is not None or self._ok(), 60) or \
                self.proc.poll() is not None:
            return f"dockerd did not come up (see {self.tmp}/dockerd.log)"
        return None

    def docker(self, *args: str, stdin: bytes | None = None) -> str:
        r = subprocess.run(["docker", *args], input=stdin, check=False, capture_output=True, env=self.env,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {r.stderr.decode().strip()}")
        return r.stdout.decode().strip()

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def busybox_tar() -> bytes:
    """A root holding only a static busybox, for `docker import`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in ("sh", "sleep"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    return buf.getvalue()


def shim_rss(tmp: str) -> dict:
    d = Dockerd(tmp)
    reason = d.start()
    if reason:
        return {"absent": reason}
    image = f"minibox-bench-busybox:{os.getpid()}"
    cid = None
    try:
        d.docker("import", "-", image, stdin=busybox_tar())
        cid = d.docker("run", "-d", "--network", "none", image, "sleep", "1000")
        pid = wait_for(lambda: find_process("containerd-shim-runc-v2", cid), 30)
        if pid is None:
            return {"absent": f"no containerd-shim-runc-v2 process names container {cid[:12]}"}
        time.sleep(SETTLE_S)
        return {"how": "docker run -d (containerd-shim-runc-v2)", "pid": pid, **memory(pid)}
    finally:
        if cid:
            subprocess.run(["docker", "rm", "-f", cid], check=False, capture_output=True, env=d.env)
        subprocess.run(["docker", "rmi", "-f", image], check=False, capture_output=True, env=d.env)
        d.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("MINIBOX_ROOT", "/var/lib/minibox"),
                    help="minibox root for `minibox run -d` (default %(default)s)")
    ap.add_argument("--no-docker", action="store_true", help="skip the docker side")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="minibox-bench-rss-")
    try:
        mon = minibox_run_d(args.root) or monitor_alone(tmp)
        shim = {"absent": "--no-docker"} if args.no_docker else shim_rss(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"minibox monitor RSS:           {mon['rss_kb']:>7} kB   anon {mon.get('rss_anon_kb', '?'):>6} kB"
          f"   ({mon['how']})")
    if "absent" in shim:
        print(f"containerd-shim-runc-v2 RSS:   absent ({shim['absent']})")
        ratio = None
    else:
        print(f"containerd-shim-runc-v2 RSS:   {shim['rss_kb']:>7} kB   anon {shim.get('rss_anon_kb', '?'):>6} kB"
          f"   ({shim['how']})")
        ratio = mon["rss_kb"] / shim["rss_kb"]
        verdict = "ok" if ratio <= 1.0 else "FAIL: above the shim"
        print(f"ratio monitor/shim:            {ratio:7.3f}      (<= 1.0 required: {verdict})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"monitor": mon, "shim": shim, "ratio": ratio}, f, indent=1)
    return 0 if ratio is None or ratio <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
