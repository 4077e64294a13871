"""Safe extraction of untrusted image layer tars, built on directory file descriptors.

Layers come from registries and archives nobody here controls, so every entry
is hostile until proven otherwise. Python's ``tarfile`` is used only as a
header parser: it never touches the filesystem. The extractor itself

- walks to an entry's parent one component at a time with
  ``openat(O_DIRECTORY|O_NOFOLLOW)``, so a symlink (or anything else that is
  not a real directory) in a parent position stops the layer, instead of being
  resolved on the host as ``tarfile``'s filters do;
- rejects ``..`` components and makes absolute names relative;
- creates the last component with ``O_CREAT|O_EXCL|O_NOFOLLOW`` (a name that
  exists is unlinked first, never written through);
- links hard links only to entries this layer already created, with
  ``linkat`` without ``AT_SYMLINK_FOLLOW``;
- never creates device nodes from a layer (they are skipped), except the
  overlayfs whiteouts it derives from OCI ``.wh.`` names;
- keeps setuid/setgid/sticky bits, owners, mtimes and the xattrs that are safe
  (``user.*``, ``security.capability``), and refuses ``trusted.overlay.*``;
- enforces a byte and an entry budget, so bombs fail cleanly;
- hashes the uncompressed stream while reading it: the layer's diff_id.

Directory modes and mtimes are applied at the end (children change a
directory's mtime, and a 0555 directory would refuse its own children).
"""

import os
import stat
from dataclasses import dataclass, field

from minibox.errors import MiniboxError

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_SAFE_XATTR_PREFIXES = ("user.",)
_SAFE_XATTRS = ("security.capability",)
_PAX_XATTR = "SCHILY.xattr."
_MAX_NAME = 4096
_FD_CACHE_MAX = 256
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class LayerError(MiniboxError):
    """A layer that cannot be unpacked safely (hostile, corrupt or too big)."""


@dataclass(frozen=True)
class Limits:
    """Budgets for one layer: uncompressed tar bytes and number of entries."""

    max_bytes: int = 64 << 30
    max_entries: int = 4_000_000
    # tarfile holds a pax/long-name header in memory whole: cap what one
    # header may read so a hostile one cannot exhaust memory first.
    max_header: int = 32 << 20


@dataclass
class LayerStats:
    """What an unpack produced: ``diff_id`` is ``sha256:`` of the tar stream."""

    diff_id: str = ""
    size: int = 0
    tar_size: int = 0
    entries: int = 0
    skipped: list = field(default_factory=list)


class _HashingReader:
    """Reads the uncompressed tar stream, hashing and counting every byte."""

    def __init__(self, raw, limit: int, label: str):
        import hashlib

        self._raw = raw
        self._limit = limit
        self._label = label
        self.hash = hashlib.sha256()
        self.count = 0
        self.header_limit = 0  # > 0 while tarfile parses a header
        self.header_count = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._raw.read(size if size is not None and size >= 0 else _CHUNK)
        except _decompress_errors() as exc:
            raise LayerError(f"{self._label}: corrupt compressed data: {exc}") from None
        self.count += len(data)
        if self.header_limit:
            self.header_count += len(data)
            if self.header_count > self.header_limit:
                raise LayerError(f"{self._label}: a tar header larger than {self.header_limit} bytes")
        if self.count > self._limit:
            raise LayerError(f"{self._label}: layer exceeds the size limit of {self._limit} bytes")
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def _decompress_errors() -> tuple:
    """What gzip/zlib/zstandard raise on corrupt input (they share no base class)."""
    import sys
    import zlib

    errors = (OSError, EOFError, ValueError, zlib.error)
    zstd = sys.modules.get("zstandard")
    return errors + (zstd.ZstdError,) if zstd is not None else errors


class _Peek:
    """A read-only stream that lets the first bytes be inspected once."""

    def __init__(self, raw, head: bytes):
        self._raw = raw
        self._head = head

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            if len(data) < size:
                data += self._raw.read(size - len(data))
            return data
        return self._raw.read(size)


def decompressed(fileobj, label: str = "layer"):
    """Return (reader, closer) of ``fileobj`` uncompressed (gzip, zstd or plain)."""
    head = fileobj.read(4)
    raw = _Peek(fileobj, head)
    if head.startswith(GZIP_MAGIC):
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb"), None
    if head.startswith(ZSTD_MAGIC):
        return _zstd_reader(raw, label)
    return raw, None


def _zstd_reader(raw, label):
    """zstd through the ``zstandard`` module if present, else the ``zstd`` tool."""
    try:
        import zstandard
    except ImportError:
        zstandard = None
    if zstandard is not None:
        return zstandard.ZstdDecompressor().stream_reader(raw), None
    import shutil
    import subprocess
    import threading

    tool = shutil.which("zstd")
    if tool is None:
        raise LayerError(f"{label}: zstd-compressed layer, but neither python zstandard nor zstd is installed")
    proc = subprocess.Popen([tool, "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def feed():
        try:
            while chunk := raw.read(_CHUNK):
                proc.stdin.write(chunk)
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()

    def close():
        proc.stdout.close()
        rc = proc.wait()
        feeder.join()
        if rc not in (0, -13):
            raise LayerError(f"{label}: corrupt zstd data (zstd exited {rc})")

    return proc.stdout, close


def split_name(name: str, label: str, what: str = "entry") -> tuple:
    """Components of a tar name: absolute made relative, '.' dropped, '..' refused."""
    if len(name) > _MAX_NAME:
        raise LayerError(f"{label}: {what} {name[:64]!r}...: name longer than {_MAX_NAME} bytes")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise LayerError(f"{label}: {what} {name!r}: path escapes the layer ('..')")
    return parts


def whiteout_target(base: str, parts: tuple, label: str, name: str):
    """Classify an entry's basename: ('opaque'|'meta'|'whiteout'|None, target).

    Pure logic, so the policy is unit-tested without root.
    """
    if not base.startswith(WHITEOUT_PREFIX):
        return None, None
    if base == WHITEOUT_OPAQUE:
        if len(parts) < 2:
            raise LayerError(f"{label}: entry {name!r}: opaque whiteout of the layer root")
        return "opaque", None
    if base.startswith(WHITEOUT_META_PREFIX):
        return "meta", None
    target = base[len(WHITEOUT_PREFIX):]
    if target in ("", ".", "..") or "/" in target:
        raise LayerError(f"{label}: entry {name!r}: invalid whiteout")
    return "whiteout", target


class _Extractor:
    def __init__(self, rootfd: int, label: str, limits: Limits):
        self.root = rootfd
        self.label = label
        self.limits = limits
        self.cache: dict[tuple, int] = {}
        self.retired: list[int] = []
        self.dirs: list = []
        self.links_ok: set = set()
        self.privileged = os.geteuid() == 0
        self.root_group = os.getegid() == 0
        self.stats = LayerStats()

    # --- directory walking without following anything ---------------------
    def close(self) -> None:
        self.close_retired()
        for fd in self.cache.values():
            os.close(fd)
        self.cache.clear()

    def close_retired(self) -> None:
        for fd in self.retired:
            os.close(fd)
        self.retired.clear()

    def dirfd(self, parts: tuple, create: bool, entry: str) -> int:
        """fd of the directory ``parts`` under the root, opened with O_NOFOLLOW.

        Missing parents are created (0755, as docker does) when ``create``.
        """
        if not parts:
            return self.root
        fd = self.cache.get(parts)
        if fd is not None:
            return fd
        i = len(parts) - 1
        while i > 0 and parts[:i] not in self.cache:
            i -= 1
        cur = self.cache[parts[:i]] if i else self.root
        for j in range(i, len(parts)):
            name = parts[j]
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=cur)
            except FileNotFoundError:
                if not create:
                    raise LayerError(f"{self.label}: entry {entry!r}: {'/'.join(parts[:j + 1])} does not exist") from None
                os.mkdir(name, 0o755, dir_fd=cur)
                fd = os.open(name, _DIR_FLAGS, dir_fd=cur)
            except OSError as exc:
                raise LayerError(
                    f"{self.label}: entry {entry!r}: parent {'/'.join(parts[:j + 1])} is a symlink or "
                    f"not a directory ({exc.strerror})"
                ) from None
            if len(self.cache) >= _FD_CACHE_MAX:
                # Callers may still hold fds from the cache: retire, close later.
                self.retired.extend(self.cache.values())
                self.cache.clear()
            self.cache[parts[: j + 1]] = fd
            cur = fd
        return cur

    def make_room(self, pfd: int, name: str, path: tuple, new_is_dir: bool):
        """Remove whatever is at ``name`` unless dir replaces dir (docker's merge rule)."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode):
            if new_is_dir:
                return st
            import shutil

            # Cached fds into the tree being removed must not be reused.
            for key in [k for k in self.cache if k[: len(path)] == path]:
                os.close(self.cache.pop(key))
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
        self.links_ok.discard(path)
        return None

    # --- metadata ----------------------------------------------------------
    def xattrs(self, member) -> list:
        out = []
        for key, value in member.pax_headers.items():
            if not key.startswith(_PAX_XATTR):
                continue
            attr = key[len(_PAX_XATTR):]
            if attr.startswith("trusted.overlay."):
                raise LayerError(f"{self.label}: entry {member.name!r}: refusing xattr {attr}")
            if attr in _SAFE_XATTRS or attr.startswith(_SAFE_XATTR_PREFIXES):
                raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
                out.append((attr, raw))
        return out

    def apply_fd(self, fd: int, member, xattrs) -> None:
        """Owner, then mode (chown clears setuid), xattrs, then mtime."""
        # New entries are root's already (no setgid dir exists before the end).
        if self.privileged and (member.uid or member.gid or not self.root_group):
            os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)
        for attr, value in xattrs:
            os.setxattr(fd, attr, value)
        ns = int(member.mtime * 1_000_000_000)
        os.utime(fd, ns=(ns, ns))

    # --- entries -----------------------------------------------------------
    def entry(self, tf, member) -> None:
        self.close_retired()
        name = member.name
        parts = split_name(name, self.label)
        if not parts:
            if not member.isdir():
                raise LayerError(f"{self.label}: entry {name!r}: the layer root must be a directory")
            self.dirs.append(((), member, self.xattrs(member)))
            return
        base = parts[-1]
        kind, target = whiteout_target(base, parts, self.label, name)
        if kind == "meta":
            return
        pfd = self.dirfd(parts[:-1], True, name)
        if kind == "opaque":
            os.setxattr(pfd, OPAQUE_XATTR, b"y")
            return
        if kind == "whiteout":
            self.whiteout(pfd, target, parts[:-1] + (target,), member)
            return
        xattrs = self.xattrs(member)
        if member.isreg():
            self.regular(tf, member, pfd, base, parts, xattrs)
        elif member.isdir():
            try:
                os.mkdir(base, 0o700, dir_fd=pfd)
            except FileExistsError:
                if self.make_room(pfd, base, parts, True) is None:
                    os.mkdir(base, 0o700, dir_fd=pfd)
            self.dirs.append((parts, member, xattrs))
        elif member.issym():
            try:
                os.symlink(member.linkname, base, dir_fd=pfd)
            except FileExistsError:
                self.make_room(pfd, base, parts, False)
                os.symlink(member.linkname, base, dir_fd=pfd)
            self.lmeta(pfd, base, member)
            self.links_ok.add(parts)
        elif member.islnk():
            self.hardlink(member, pfd, base, parts)
        elif member.isfifo():
            self.make_room(pfd, base, parts, False)
            os.mkfifo(base, 0o600, dir_fd=pfd)
            fd = os.open(base, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                self.apply_fd(fd, member, xattrs)
            finally:
                os.close(fd)
            self.links_ok.add(parts)
        else:
            # Device nodes (and unknown types) are never created from a layer.
            self.stats.skipped.append(name)

    def regular(self, tf, member, pfd, base, parts, xattrs) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(base, flags, 0o600, dir_fd=pfd)
        except FileExistsError:
            self.make_room(pfd, base, parts, False)
            fd = os.open(base, flags, 0o600, dir_fd=pfd)
        try:
            # The stream is positioned at the member's data; reading it directly
            # skips tarfile's per-file reader objects (sparse files need them).
            src = tf.extractfile(member) if member.sparse is not None else tf.fileobj
            remaining = member.size
            while remaining > 0:
                chunk = src.read(min(_CHUNK, remaining))
                if not chunk:
                    raise LayerError(f"{self.label}: entry {member.name!r}: truncated file data")
                remaining -= len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            self.apply_fd(fd, member, xattrs)
        finally:
            os.close(fd)
        self.stats.size += member.size
        self.links_ok.add(parts)

    def lmeta(self, pfd: int, base: str, member) -> None:
        """Owner and mtime of a symlink itself (a symlink has no mode)."""
        if self.privileged and (member.uid or member.gid or not self.root_group):
            os.chown(base, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        ns = int(member.mtime * 1_000_000_000)
        os.utime(base, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def hardlink(self, member, pfd, base, parts) -> None:
        target = split_name(member.linkname, self.label, f"hardlink {member.name!r} ->")
        if target == parts:
            raise LayerError(f"{self.label}: entry {member.name!r}: hardlink to itself")
        if target not in self.links_ok:
            raise LayerError(
                f"{self.label}: entry {member.name!r}: hardlink to {member.linkname!r}, "
                "which is not an earlier file of this layer"
            )
        self.make_room(pfd, base, parts, False)
        tfd = self.dirfd(target[:-1], False, member.name)
        os.link(target[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        self.links_ok.add(parts)

    def whiteout(self, pfd, target, path, member) -> None:
        """An overlayfs whiteout: char device 0/0 (a same-layer entry wins)."""
        try:
            os.stat(target, dir_fd=pfd, follow_symlinks=False)
            return
        except FileNotFoundError:
            pass
        os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
        if self.privileged:
            os.chown(target, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)

    def finish_dirs(self) -> None:
        """Modes, owners and mtimes of directories, deepest first."""
        seen_root = False
        for parts, member, xattrs in reversed(self.dirs):
            if not parts:
                if seen_root:
                    continue
                seen_root = True
            try:
                fd = self.dirfd(parts, False, member.name)
            except LayerError:
                continue  # replaced by a later entry: nothing to apply
            self.apply_fd(fd, member, xattrs)
        if not seen_root:
            os.fchmod(self.root, 0o755)


def unpack(fileobj, dest: str, *, limits: Limits = Limits(), label: str = "layer") -> LayerStats:
    """Unpack the layer tar read from ``fileobj`` (gzip/zstd/plain) into ``dest``.

    ``dest`` must be an existing, empty directory the caller owns (a temp dir
    that is renamed into place afterwards). Returns the diff_id and the size.
    Raises LayerError naming the entry at fault; ``dest`` is then left for the
    caller to remove.
    """
    import tarfile

    rootfd = os.open(dest, _DIR_FLAGS)
    ex = _Extractor(rootfd, label, limits)
    closer = None
    try:
        stream, closer = decompressed(fileobj, label)
        reader = _HashingReader(stream, limits.max_bytes, label)
        try:
            # Opening a stream reads the first header already.
            reader.header_count, reader.header_limit = 0, limits.max_header
            with tarfile.open(fileobj=reader, mode="r|") as tf:
                while True:
                    reader.header_count, reader.header_limit = 0, limits.max_header
                    member = tf.next()
                    reader.header_limit = 0
                    if member is None:
                        break
                    tf.members.clear()  # stream mode: keep memory flat on huge layers
                    ex.stats.entries += 1
                    if ex.stats.entries > limits.max_entries:
                        raise LayerError(f"{label}: more than {limits.max_entries} entries")
                    try:
                        ex.entry(tf, member)
                    except OSError as exc:
                        raise LayerError(f"{label}: entry {member.name!r}: {exc.strerror or exc}") from None
            reader.drain()
        except tarfile.TarError as exc:
            raise LayerError(f"{label}: invalid tar stream: {exc}") from None
        if closer is not None:
            closer()
            closer = None
        ex.finish_dirs()
        ex.stats.diff_id = "sha256:" + reader.hash.hexdigest()
        ex.stats.tar_size = reader.count
        return ex.stats
    finally:
        if closer is not None:
            try:
                closer()
            except LayerError:
                pass
        ex.close()
        os.close(rootfd)
