"""Run privileged tests inside a VM booted on Debian's kernel with pure cgroup v2.

    python tests/vm/run.py [--timeout S] [--accel auto|kvm|tcg] [--check] [--cmd 'SHELL CMD'] [pytest args]

The development host runs hybrid cgroup v1; CI machines may too. This
harness boots Debian's stock kernel under qemu with ``cgroup_no_v1=all``,
shares the host's / read-only over virtio-9p (tmpfs overlay on top, so the
guest sees the same python, venv and worktree), runs pytest in the same
directory as here, and exits with pytest's status. Without pytest args it
runs the cgroup tests (DEFAULT_TESTS). KVM is used when it boots within a few seconds,
else TCG (KVM hangs on these nested machines). Needs root and
qemu-system-x86 (apt-get install qemu-system-x86).
"""

import glob
import os
import re
import secrets
import select
import shlex
import shutil
import subprocess
import sys
import time

if not __package__:
    # Run as a script (tests/vm/run.py): tests/ is deliberately not a package,
    # so that pytest imports minibox from the installed venv, not the tree.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.vm import initramfs, kernel  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
QEMU = "qemu-system-x86_64"
CMDLINE = "console=ttyS0 cgroup_no_v1=all quiet panic=-1 8250.nr_uarts=1"
# Dirs that get a fresh tmpfs in the guest: overlayfs cannot take an overlay as
# upperdir, and container layers (minibox roots, test roots in /var/tmp) live there.
TMPFS_DIRS = "/var/lib/minibox /var/tmp"
# qboot (a minimal firmware that only boots a -kernel) starts faster than SeaBIOS.
FIRMWARE = ["-bios", "qboot.rom"] if os.path.exists("/usr/share/qemu/qboot.rom") else []
KVM_BOOT_SECONDS = 8  # a working KVM reaches init in ~1s; a broken one hangs in the BIOS
# The cgroup v2 tests; .ci/run passes more (namespaces, overlay, network) explicitly.
DEFAULT_TESTS = ["-q", "-ra", "tests/integration/test_cgroups_real.py", "tests/integration/test_resources.py"]
PASS_ENV = ("CI", "MINIBOX_ROOT", "MINIBOX_CGROUP_PARENT", "TERM")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _kvm_verdict_file(cache: str) -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot_id = f.read().strip()
    except OSError:
        boot_id = "unknown"
    return os.path.join(cache, f"kvm-broken-{boot_id}")


def kvm_usable(cache: str) -> bool:
    """/dev/kvm can create a VM and did not hang a boot earlier since the host booted.

    A nested KVM can create VMs and still never run the guest; the boot
    watchdog catches that once and the verdict is remembered for this host boot.
    """
    import fcntl

    if os.path.exists(_kvm_verdict_file(cache)):
        return False

    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        vm = fcntl.ioctl(fd, 0xAE01, 0)  # KVM_CREATE_VM
        os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def base_initramfs(k: kernel.Kernel, cache: str) -> bytes:
    """The cached busybox+modules+init archive for this kernel (rebuilt when init.sh changes)."""
    with open(os.path.join(HERE, "init.sh")) as f:
        init = f.read()
    with open(os.path.join(HERE, "stage2.sh")) as f:
        stage2 = f.read()
    import hashlib

    key = hashlib.sha256((init + stage2 + "\n".join(initramfs.WANTED)).encode()).hexdigest()[:12]
    path = os.path.join(cache, f"initramfs-{k.version}-{key}.cpio.gz")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    busybox = shutil.which("busybox") or "/bin/busybox"
    out = subprocess.run(["file", "-L", busybox], check=False, capture_output=True, text=True).stdout if shutil.which("file") else ""
    if out and "statically linked" not in out and "static-pie" not in out:
        raise RuntimeError(f"{busybox} is not static: apt-get install busybox-static")
    data, missing = initramfs.build_base(k, busybox, init, stage2)
    if missing:
        log(f"vm: modules not in this kernel (skipped): {' '.join(missing)}")
    # Archives of older init scripts are never used again (a running harness
    # has already read its own into memory).
    for old in glob.glob(os.path.join(cache, f"initramfs-{k.version}-*.cpio.gz")):
        os.unlink(old)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return data


def _remove_stale_initrds(cache: str) -> None:
    """Per-run initrds of harness runs that were killed before they could remove theirs."""
    for path in glob.glob(os.path.join(cache, "initrd-run-*.img")):
        pid = path.rsplit("-", 1)[1].removesuffix(".img")
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def run_script(argv: list[str], cwd: str, check: bool) -> str:
    """The shell script the guest runs (as a child of PID 1) in the host's tree."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root", "LANG": "C.UTF-8", "MINIBOX_IN_VM": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({k: os.environ[k] for k in PASS_ENV if k in os.environ})
    lines = ["export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()), f"cd {shlex.quote(cwd)} || exit 125"]
    if check:
        lines.append(f"{shlex.quote(sys.executable)} -m minibox check; echo")
    lines.append(" ".join(shlex.quote(a) for a in argv))
    return "\n".join(lines) + "\n"


def boot(k, initrd: str, accel: str, timeout: float, token: str, boot_timeout: float | None):
    """Boot once; returns (exit status or None, output lines, reason)."""
    cmd = [
        QEMU, "-accel", accel, *FIRMWARE, "-m", os.environ.get("MINIBOX_VM_MEMORY", "2G"),
        "-smp", os.environ.get("MINIBOX_VM_SMP", "2"), "-nographic", "-no-reboot", "-nic", "none",
        "-kernel", k.vmlinuz, "-initrd", initrd, "-append", CMDLINE,
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
    ]
    if accel == "kvm":
        cmd += ["-cpu", "host"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    fd = proc.stdout.fileno()
    start = time.monotonic()
    booted, status, lines, pending = False, None, [], b""
    exit_re = re.compile(rf"MINIBOX-VM-EXIT {token} (\d+)")
    reason = "qemu exited"
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.5)
            chunk = os.read(fd, 65536) if ready else None
            if chunk == b"":
                break
            if chunk:
                pending += chunk
                *done, pending = pending.split(b"\n")
                for raw in done:
                    # SeaBIOS/qemu clear-screen sequences are noise on a log.
                    line = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1bc", "", raw.decode(errors="replace").rstrip("\r"))
                    lines.append(line)
                    if f"MINIBOX-VM-BOOTED {token}" in line:
                        booted = True
                    elif m := exit_re.search(line):
                        status = int(m.group(1))
                    else:
                        print(line, flush=True)
            elapsed = time.monotonic() - start
            if not booted and boot_timeout and elapsed > boot_timeout:
                reason = f"no boot within {boot_timeout:.0f}s"
                break
            if elapsed > timeout:
                reason = f"timeout after {timeout:.0f}s"
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if pending:
        # A partial line (pytest -v names a test before its result) shows where it hung.
        lines.append(pending.decode(errors="replace").rstrip("\r"))
        print(lines[-1], flush=True)
    return status, lines, booted, reason


def summary(lines: list[str]) -> str | None:
    """pytest's last summary line (``3 passed, 1 skipped in 12.3s``)."""
    for line in reversed(lines):
        if re.search(r"\b(passed|failed|error|errors|skipped|no tests ran|deselected)\b.* in [\d.]+s", line):
            return line.strip("= ").strip()
    return None


def parse_args(argv):
    opts = {"timeout": float(os.environ.get("MINIBOX_VM_TIMEOUT", "900")), "accel": os.environ.get("MINIBOX_VM_ACCEL", "auto"),
            "check": False, "cmd": None, "cache": kernel.DEFAULT_CACHE}
    while argv and argv[0] in ("--timeout", "--accel", "--check", "--cmd", "--cache"):
        flag = argv.pop(0)
        if flag == "--check":
            opts["check"] = True
            continue
        if not argv:
            raise SystemExit(f"vm: {flag} needs a value")
        value = argv.pop(0)
        opts[flag[2:]] = float(value) if flag == "--timeout" else value
    return opts, argv


def main(argv: list[str] | None = None) -> int:
    opts, rest = parse_args(list(sys.argv[1:] if argv is None else argv))
    if os.geteuid() != 0:
        log("vm: needs root (qemu exports / over 9p and the tests inside run as root)")
        return 125
    if not shutil.which(QEMU):
        log(f"vm: {QEMU} not found: apt-get install qemu-system-x86")
        return 125
    t0 = time.monotonic()
    cache = opts["cache"]
    k = kernel.fetch(cache, log)
    base = base_initramfs(k, cache)
    if opts["cmd"]:
        argv_in_vm = ["/bin/sh", "-c", opts["cmd"]]
    else:
        # The pytest script, not "python -m pytest": -m would put the cwd (a source
        # tree without the compiled shim) ahead of the installed minibox.
        script = os.path.join(os.path.dirname(sys.executable), "pytest")
        runner = [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "pytest"]
        # No cache provider: the tree is shared read-only, pytest could not write its cache.
        argv_in_vm = runner + ["-p", "no:cacheprovider"] + (rest or DEFAULT_TESTS)
    token = secrets.token_hex(8)
    extra = initramfs.command_archive({
        "vm-run.sh": run_script(argv_in_vm, os.getcwd(), opts["check"]).encode(),
        "vm.env": (f"TOKEN={token}\nTMPFS_DIRS={shlex.quote(TMPFS_DIRS)}\n"
                   f"HOST_CWD={shlex.quote(os.getcwd())}\n").encode(),
    })
    _remove_stale_initrds(cache)
    initrd = os.path.join(cache, f"initrd-run-{os.getpid()}.img")
    try:
        with open(initrd, "wb") as f:
            # A gzip member ends anywhere; the next cpio must start 4-byte aligned.
            f.write(base + b"\0" * (-len(base) % 4) + extra)
        accels = [opts["accel"]] if opts["accel"] != "auto" else (["kvm", "tcg"] if kvm_usable(cache) else ["tcg"])
        log(f"vm: kernel {k.version}, accel {'/'.join(accels)}, prepared in {time.monotonic() - t0:.1f}s")
        for accel in accels:
            t1 = time.monotonic()
            boot_timeout = KVM_BOOT_SECONDS if accel == "kvm" and len(accels) > 1 else None
            status, lines, booted, reason = boot(k, initrd, accel, opts["timeout"], token, boot_timeout)
            if accel == "kvm" and not booted and len(accels) > 1:
                log(f"vm: kvm did not boot ({reason}); falling back to tcg")
                with open(_kvm_verdict_file(cache), "w") as f:
                    f.write(reason + "\n")
                continue
            break
    finally:
        try:
            os.unlink(initrd)
        except FileNotFoundError:
            pass
    took = time.monotonic() - t0
    s = summary(lines)
    log(f"vm: accel {accel}, boot+run {time.monotonic() - t1:.1f}s, total {took:.1f}s")
    if s:
        log(f"vm: pytest summary: {s}")
    if status is None:
        log(f"vm: no exit status from the guest ({reason}); last lines:\n  " + "\n  ".join(lines[-15:]))
        return 125
    log(f"vm: exit status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
