"""The build context: what COPY/ADD may read, its size, and content digests for the cache.

The walk honours .dockerignore without ever opening an ignored file: it only
lists directories and ``lstat``s entries, and it does not even list an ignored
directory unless an exception pattern could re-include something beneath it.
That is the seed's ``.dockerignore`` lesson: ``node_modules`` or ``.git`` cost
nothing when ignored. Files are opened only when a COPY/ADD source needs its
digest.

Digests cover names, file types, permission bits, symlink targets and file
content (sha256) — never mtimes or owners, so touching a file or checking out
the tree again keeps the cache, while editing one byte or a chmod invalidates
it. A per-build memo (optionally persisted by the caller) keyed by
(dev, inode, size, mtime, ctime) avoids re-reading unchanged files, as git's
index does; ctime changes on every write, so a stale entry cannot survive an edit.
"""

import os
import re
import stat
from dataclasses import dataclass

from minibox.build.ignore import PatternMatcher, check_syntax, clean
from minibox.errors import MiniboxError, SyscallError

_CHUNK = 1 << 20
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_MAX_SYMLINKS = 40


def human_size(n: float) -> str:
    """Bytes as BuildKit prints them (go-units HumanSize: decimal, 4 significant digits)."""
    i = 0
    n = float(n)
    while n >= 1000.0 and i < len(_UNITS) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{_UNITS[i]}"


@dataclass
class Entry:
    """One context path (slash-separated, relative to the context root)."""

    path: str
    mode: int            # st_mode: type and permission bits
    size: int
    target: str | None   # symlink target
    stat_key: tuple      # (dev, ino, size, mtime_ns, ctime_ns): memo key only, never hashed

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)


class BuildContext:
    """A scanned context directory; see :func:`scan`."""

    def __init__(self, root: str, matcher: PatternMatcher, entries: dict[str, Entry],
                 memo: dict | None = None):
        self.root = root
        self.matcher = matcher
        self.entries = entries
        self.memo = memo if memo is not None else {}
        self.size = sum(e.size for e in entries.values() if e.is_file)
        self.files_hashed = 0

    def transfer_message(self) -> str:
        return f"transferring context: {human_size(self.size)}"

    # -- COPY/ADD sources ----------------------------------------------------

    def resolve(self, source: str, what: str = "COPY") -> list[str]:
        """Context paths a COPY/ADD source names (wildcards expanded, sorted).

        A source is relative to the context even when written absolute; one
        that climbs out with ``..`` is refused, and one matching nothing (or
        only ignored files) is an error, as under docker.
        """
        path = clean(source)
        if path == ".." or path.startswith("../"):
            raise MiniboxError(f"{what} failed: forbidden path outside the build context: {source}")
        path = path.lstrip("/") or "."
        if path == ".":
            return ["."]
        if _has_magic(path):
            regex = glob_regex(path)
            found = sorted(p for p in self.entries if regex.match(p))
        else:
            found = [path] if path in self.entries else []
        if not found:
            raise MiniboxError(
                f"{what} failed: file not found in build context or excluded by .dockerignore: {source}")
        return found

    def follow(self, path: str, what: str = "COPY") -> str:
        """Resolve symlinks in a top-level source, never leaving the context."""
        seen = 0
        while path in self.entries and self.entries[path].is_symlink:
            seen += 1
            if seen > _MAX_SYMLINKS:
                raise MiniboxError(f"{what} failed: too many levels of symbolic links: {path}")
            target = self.entries[path].target or ""
            base = "" if target.startswith("/") else os.path.dirname(path)
            path = clean("/" + base + "/" + target).lstrip("/") or "."
        if path != "." and path not in self.entries:
            raise MiniboxError(
                f"{what} failed: file not found in build context or excluded by .dockerignore: {path}")
        return path

    def walk(self, path: str) -> list[Entry]:
        """``path`` and every context entry beneath it, in sorted order."""
        # entries is kept in sorted order by scan().
        if path == ".":
            return list(self.entries.values())
        prefix = path + "/"
        return [self.entries[path]] + [e for p, e in self.entries.items() if p.startswith(prefix)]

    def sources_digest(self, sources: list[str], what: str = "COPY") -> str:
        """``sha256:<hex>`` over the names, types, modes, link targets and contents of the
        files the sources select: the COPY/ADD part of a cache key."""
        import hashlib

        h = hashlib.sha256()
        for source in sources:
            h.update(b"source\0" + source.encode() + b"\0")
            for found in self.resolve(source, what):
                real = self.follow(found, what)
                h.update(b"match\0" + found.encode() + b"\0")
                if real == ".":
                    items = self.walk(".")
                    base = ""
                else:
                    items = self.walk(real)
                    base = real
                for entry in items:
                    rel = entry.path[len(base):].lstrip("/") if base else entry.path
                    h.update(self._entry_record(rel or ".", entry))
        return "sha256:" + h.hexdigest()

    def _entry_record(self, rel: str, entry: Entry) -> bytes:
        kind = stat.S_IFMT(entry.mode)
        perm = stat.S_IMODE(entry.mode)
        if entry.is_file:
            extra = self.file_digest(entry)
        elif entry.is_symlink:
            extra = entry.target or ""
        else:
            extra = ""
        return f"{rel}\0{kind:o}\0{perm:o}\0{extra}\n".encode()

    def file_digest(self, entry: Entry) -> str:
        """sha256 of a regular file's content, memoised by its stat key."""
        key = entry.path + "\0" + ":".join(map(str, entry.stat_key))
        cached = self.memo.get(key)
        if cached:
            return cached
        digest = hash_file(os.path.join(self.root, entry.path))
        self.files_hashed += 1
        self.memo[key] = digest
        return digest


def hash_file(path: str) -> str:
    """sha256 hex of a regular file; refuses to follow a symlink swapped in meanwhile."""
    import hashlib

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise SyscallError(e.errno, "open", path) from None
    try:
        h = hashlib.sha256()
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def _has_magic(path: str) -> bool:
    return any(c in path for c in "*?[\\")


def glob_regex(pattern: str) -> re.Pattern:
    """Go's filepath.Match syntax as a regexp: ``*`` and ``?`` stay within one path element."""
    check_syntax(pattern)
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            out.append("[")
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            first = True
            while i < n and (pattern[i] != "]" or first):
                c = pattern[i]
                if c == "\\" and i + 1 < n:
                    i += 1
                    c = pattern[i]
                    out.append(re.escape(c))
                else:
                    out.append(c if c == "-" else re.escape(c))
                first = False
                i += 1
            out.append("]")
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z")


def scan(root: str, matcher: PatternMatcher | None = None, memo: dict | None = None) -> BuildContext:
    """Walk the context at ``root``, keeping what ``matcher`` does not exclude.

    Ignored files are never opened and ignored directories are not listed
    unless an exception could re-include something under them; a directory
    kept only because an exception re-includes its contents appears as the
    parent of those contents.
    """
    matcher = matcher or PatternMatcher([])
    root = os.path.abspath(root)
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise MiniboxError(f"unable to prepare context: path {root!r} not found") from None
    except OSError as e:
        raise SyscallError(e.errno, "stat", root) from None
    if not stat.S_ISDIR(st.st_mode):
        raise MiniboxError(f"unable to prepare context: context must be a directory: {root}")
    entries: dict[str, Entry] = {}
    pending: dict[str, Entry] = {}   # excluded dirs, added if something below is kept
    stack: list[tuple[str, list[bool] | None]] = [("", None)]
    while stack:
        rel_dir, info = stack.pop()
        full = os.path.join(root, rel_dir) if rel_dir else root
        try:
            with os.scandir(full) as it:
                children = list(it)
        except OSError as e:
            raise SyscallError(e.errno, "scandir", full) from None
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            try:
                cst = child.stat(follow_symlinks=False)
            except OSError as e:
                raise SyscallError(e.errno, "lstat", child.path) from None
            excluded, child_info = matcher.matches(rel, info) if matcher.patterns else (False, None)
            is_dir = stat.S_ISDIR(cst.st_mode)
            entry = Entry(rel, cst.st_mode, cst.st_size if stat.S_ISREG(cst.st_mode) else 0,
                          os.readlink(child.path) if stat.S_ISLNK(cst.st_mode) else None,
                          (cst.st_dev, cst.st_ino, cst.st_size, cst.st_mtime_ns, cst.st_ctime_ns))
            if excluded:
                if is_dir and matcher.exclusions and matcher.could_include_below(rel):
                    pending[rel] = entry
                    stack.append((rel, child_info))
                continue
            _add_parents(rel, entries, pending)
            entries[rel] = entry
            if is_dir:
                stack.append((rel, child_info))
    return BuildContext(root, matcher, dict(sorted(entries.items())), memo)


def _add_parents(rel: str, entries: dict[str, Entry], pending: dict[str, Entry]) -> None:
    parts = rel.split("/")[:-1]
    for k in range(1, len(parts) + 1):
        parent = "/".join(parts[:k])
        if parent not in entries and parent in pending:
            entries[parent] = pending[parent]
