"""A tiny initramfs: static busybox, the kernel modules the tests need, and /init.

The kernel accepts several cpio archives concatenated, later files winning,
so the large part (busybox + modules + init) is built once per kernel and
cached, and each run only appends a few hundred bytes holding its command.

The Debian .deb ships no modules.dep (depmod writes it at install time), so
the load order is computed the way depmod does: from the ``depends=`` entry
in each module's ``.modinfo`` ELF section.
"""

import gzip
import io
import os
import stat
import struct

# Modules the privileged tests use: the 9p root, overlay, veth/bridge networking
# and what iptables (nft backend) needs for NAT. Built-in ones are skipped.
WANTED = (
    "virtio_pci", "9pnet_virtio", "9p", "overlay", "veth", "bridge", "br_netfilter",
    "nf_tables", "nft_compat", "nft_chain_nat", "nf_nat", "nf_conntrack", "xt_MASQUERADE",
    "xt_conntrack", "xt_addrtype", "xt_tcpudp", "xt_comment", "xt_nat", "iptable_nat",
    "iptable_filter", "ip_tables", "nft_nat", "nft_masq", "nft_ct", "nf_reject_ipv4",
    "nft_reject_ipv4", "ipt_REJECT", "nft_fib_ipv4", "dummy", "loop",
)


# softdep "pre:" entries that name a crypto algorithm, not a module; without
# modprobe in the guest nothing would load them on demand.
SOFTDEP_ALIASES = {"crc32c": "crc32c_generic"}


class Cpio:
    """Writes a ``newc`` cpio archive (the only format the kernel unpacks)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1000
        self.dirs: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        self.ino += 1
        encoded = name.encode() + b"\0"
        header = b"070701" + b"".join(b"%08X" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(encoded), 0))
        self.buf.write(header + encoded)
        self._pad()
        self.buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def mkdir(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        if "/" in name:
            self.mkdir(os.path.dirname(name))
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        if "/" in name:
            self.mkdir(os.path.dirname(name))
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def modinfo(path: str) -> dict[str, str]:
    """The key=value strings of a module's ``.modinfo`` ELF section."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError(f"{path}: not a 64-bit ELF module")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i):
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, offset, size

    _, str_off, _ = section(shstrndx)
    for i in range(shnum):
        name, offset, size = section(i)
        end = data.index(b"\0", str_off + name)
        if data[str_off + name:end] == b".modinfo":
            out = {}
            for item in data[offset:offset + size].split(b"\0"):
                key, sep, value = item.decode(errors="replace").partition("=")
                if sep:
                    out.setdefault(key, value)
            return out
    return {}


def index_modules(moddir: str) -> dict[str, str]:
    """{module name: .ko path}; names use ``_`` as the kernel does (9pnet_virtio, nf_nat)."""
    out = {}
    for dirpath, _, files in os.walk(os.path.join(moddir, "kernel")):
        for fn in files:
            if fn.endswith(".ko"):
                out[fn[:-3].replace("-", "_")] = os.path.join(dirpath, fn)
    return out


def _depends(path: str) -> list[str]:
    """Hard dependencies plus softdep pre: ones (libcrc32c wants the crc32c algorithm first)."""
    info = modinfo(path)
    out = [d for d in info.get("depends", "").split(",") if d]
    soft = info.get("softdep", "")
    if "pre:" in soft:
        for name in soft.split("pre:", 1)[1].split("post:", 1)[0].split():
            out.insert(0, SOFTDEP_ALIASES.get(name, name))
    return out


def load_order(wanted, index: dict[str, str], depends=None) -> tuple[list[str], list[str]]:
    """(modules in an order where each comes after its dependencies, names not found).

    ``depends(name) -> list[str]`` defaults to reading .modinfo; injectable for tests.
    """
    depends = depends or (lambda n: _depends(index[n]))
    order, missing, seen = [], [], set()

    def visit(name, stack=()):
        name = name.replace("-", "_")
        if name in seen:
            return
        if name not in index:
            missing.append(name)
            seen.add(name)
            return
        if name in stack:
            raise ValueError(f"module dependency cycle: {' -> '.join(stack + (name,))}")
        for dep in depends(name):
            visit(dep, stack + (name,))
        seen.add(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return order, missing


def build_base(kernel, busybox: str, init_script: str, stage2: str = "", wanted=WANTED) -> tuple[bytes, list[str]]:
    """gzip'ed cpio with busybox, the modules (in load order, listed in /modules.load), /init and /stage2.sh."""
    index = index_modules(kernel.modules)
    order, missing = load_order(wanted, index)
    builtin = set()
    try:
        with open(os.path.join(kernel.modules, "modules.builtin")) as f:
            builtin = {os.path.basename(line.strip())[:-3].replace("-", "_") for line in f if line.strip()}
    except OSError:
        pass
    missing = [m for m in missing if m not in builtin]
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "host", "rw", "newroot", "lib/modules", "tmp"):
        c.mkdir(d)
    with open(busybox, "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    c.symlink("bin/sh", "busybox")
    for name in order:
        with open(index[name], "rb") as f:
            c.file(f"lib/modules/{name}.ko", f.read())
    c.file("modules.load", ("\n".join(order) + "\n").encode())
    c.file("init", init_script.encode(), 0o755)
    c.file("stage2.sh", stage2.encode(), 0o755)
    return gzip.compress(c.finish(), compresslevel=1), missing


def command_archive(files: dict[str, bytes]) -> bytes:
    """The small per-run archive appended after the cached base (uncompressed)."""
    c = Cpio()
    for name, data in files.items():
        c.file(name, data, 0o755)
    return c.finish()
