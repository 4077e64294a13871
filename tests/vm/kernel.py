"""Debian's stock kernel for the test VM: fetched with apt-get, unpacked once, cached.

``linux-image-amd64`` is a metapackage; the kernel itself is the versioned
``linux-image-6.x.y-N-amd64`` it depends on. Its .deb is downloaded into
the cache dir and unpacked there with dpkg-deb, so later runs (and CI
re-runs on a warm machine) do no network traffic at all.
"""

import glob
import os
import re
import shutil
import subprocess

DEFAULT_CACHE = os.environ.get("MINIBOX_VM_CACHE", "/var/cache/minibox-vm")
META = "linux-image-amd64"


class Kernel:
    """An unpacked kernel: vmlinuz, its config and its module tree."""

    def __init__(self, root: str, version: str):
        self.root = root
        self.version = version
        self.vmlinuz = os.path.join(root, "boot", f"vmlinuz-{version}")
        self.config_path = os.path.join(root, "boot", f"config-{version}")
        self.modules = os.path.join(root, "lib", "modules", version)

    def config(self) -> dict[str, str]:
        out = {}
        with open(self.config_path) as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and key.startswith("CONFIG_"):
                    out[key] = value
        return out


def resolve_package(meta: str = META) -> str:
    """The versioned kernel package the metapackage depends on (``linux-image-6.1.0-56-amd64``)."""
    out = subprocess.run(["apt-cache", "depends", meta], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\d[\w.+-]*-amd64)\s*$", line)
        if m:
            return m.group(1)
    raise RuntimeError(f"apt-cache depends {meta}: no linux-image-<version>-amd64 dependency found")


def fetch(cache: str = DEFAULT_CACHE, log=print) -> Kernel:
    """Download (if not cached) and unpack (if not unpacked) Debian's current kernel."""
    os.makedirs(cache, exist_ok=True)
    try:
        package = resolve_package()
    except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
        # Offline or no apt metadata: use whatever was unpacked before.
        found = glob.glob(os.path.join(cache, "linux-image-*-amd64", "boot", "vmlinuz-*"))
        if not found:
            raise RuntimeError(f"cannot find the kernel package ({exc}) and nothing is cached in {cache}") from None
        package = max(found).split(os.sep)[-3]
    version = package.removeprefix("linux-image-")
    unpacked = os.path.join(cache, package)
    kernel = Kernel(unpacked, version)
    if os.path.exists(os.path.join(unpacked, ".complete")):
        return kernel
    debs = glob.glob(os.path.join(cache, f"{package}_*.deb"))
    if not debs:
        log(f"vm: apt-get download {package} → {cache}")
        subprocess.run(["apt-get", "download", "-q", package], cwd=cache, check=True,
                       stdout=subprocess.DEVNULL)
        debs = glob.glob(os.path.join(cache, f"{package}_*.deb"))
    deb = max(debs)
    tmp = unpacked + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"vm: dpkg-deb -x {os.path.basename(deb)}")
    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
    shutil.rmtree(unpacked, ignore_errors=True)
    os.rename(tmp, unpacked)
    with open(os.path.join(unpacked, ".complete"), "w"):
        pass
    return kernel
