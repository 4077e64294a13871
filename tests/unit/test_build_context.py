"""The build context walk: .dockerignore honoured, ignored files never read, sizes, digests."""

import builtins
import os

import pytest

from minibox.build import context as ctxmod
from minibox.build.context import human_size, scan
from minibox.build.ignore import PatternMatcher, load, read_patterns
from minibox.errors import MiniboxError


def make_tree(root, files: dict[str, str | bytes]):
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)


@pytest.fixture
def seed_context(tmp_path):
    """The seed's project: an app, and the heavy things a .dockerignore should keep out."""
    make_tree(tmp_path, {
        "Dockerfile": "FROM busybox\nCOPY . /app\n",
        ".dockerignore": ".git\nnode_modules\ntarget\ndist\n*.log\n",
        "package.json": "{}",
        "src/app.js": "console.log('hi')\n",
        "src/util/x.js": "x\n",
        ".git/objects/pack/big.pack": b"\0" * 300_000,
        "node_modules/dep/index.js": b"m" * 200_000,
        "target/release/app": b"t" * 100_000,
        "dist/bundle.js": b"d" * 50_000,
        "debug.log": b"l" * 10_000,
    })
    return tmp_path


def test_human_size_matches_buildkit():
    assert human_size(0) == "0B"
    assert human_size(2) == "2B"
    assert human_size(999) == "999B"
    assert human_size(1000) == "1kB"
    assert human_size(32768) == "32.77kB"
    assert human_size(1_234_567) == "1.235MB"
    assert human_size(1_200_000) == "1.2MB"
    assert human_size(5 * 10**9) == "5GB"


def test_dockerignore_shrinks_the_context(seed_context):
    full = scan(str(seed_context))
    kept = scan(str(seed_context), load(str(seed_context)))
    assert full.size > 660_000
    assert kept.size < 1_000
    assert kept.transfer_message() == f"transferring context: {human_size(kept.size)}"
    assert set(kept.entries) == {"Dockerfile", ".dockerignore", "package.json", "src",
                                 "src/app.js", "src/util", "src/util/x.js"}


def test_ignored_files_are_never_opened_and_ignored_dirs_never_listed(seed_context, monkeypatch):
    opened, listed = [], []
    real_open, real_os_open, real_scandir = builtins.open, os.open, os.scandir

    def spy_open(file, *a, **kw):
        opened.append(os.fspath(file))
        return real_open(file, *a, **kw)

    def spy_os_open(path, *a, **kw):
        opened.append(os.fspath(path))
        return real_os_open(path, *a, **kw)

    def spy_scandir(path="."):
        listed.append(os.fspath(path))
        return real_scandir(path)

    matcher = load(str(seed_context))
    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    monkeypatch.setattr(os, "scandir", spy_scandir)
    ctx = scan(str(seed_context), matcher)
    ctx.sources_digest(["."])
    monkeypatch.undo()

    assert not [p for p in opened if any(b in p for b in (".git", "node_modules", "target", "dist", ".log"))]
    assert not [p for p in listed if any(b in p for b in (".git", "node_modules", "target", "dist"))]
    # The kept files were read for the digest.
    assert str(seed_context / "src" / "app.js") in opened


def test_ignored_unreadable_files_are_not_touched(tmp_path):
    """Opening a FIFO with no writer blocks, even for root: an ignored one would hang the walk
    (turned into a failure by an alarm); a mode-000 file fails to open for non-root."""
    import signal

    make_tree(tmp_path, {"app.txt": "ok", "secret/key": "s",
                         ".dockerignore": "secret\n*.pipe\n"})
    os.mkfifo(tmp_path / "x.pipe")
    os.mkfifo(tmp_path / "secret" / "y.pipe")
    os.chmod(tmp_path / "secret" / "key", 0)

    def hang(signum, frame):
        raise AssertionError("the walk opened an ignored FIFO")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(5)
    try:
        ctx = scan(str(tmp_path), load(str(tmp_path)))
        digest = ctx.sources_digest(["."])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert digest.startswith("sha256:")
    assert set(ctx.entries) == {"app.txt", ".dockerignore"}


def test_exception_reincludes_inside_an_excluded_dir(tmp_path):
    make_tree(tmp_path, {"docs/a.md": "a", "docs/README.md": "r", "docs/sub/b.md": "b",
                         "vendor/x/LICENSE": "l", "vendor/x/code.go": "c"})
    pm = PatternMatcher(["docs", "!docs/README.md", "vendor", "!**/LICENSE"])
    ctx = scan(str(tmp_path), pm)
    assert set(ctx.entries) == {"docs", "docs/README.md", "vendor", "vendor/x", "vendor/x/LICENSE"}
    # The re-included file's parents keep their real modes.
    assert ctx.entries["docs"].is_dir


def test_excluded_dir_without_possible_exception_is_skipped(tmp_path, monkeypatch):
    make_tree(tmp_path, {"docs/a.md": "a", "build/x/y": "y", "src/z": "z"})
    pm = PatternMatcher(["docs", "build", "!build/keep"])
    listed = []
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p=".": (listed.append(os.fspath(p)), real(p))[1])
    ctx = scan(str(tmp_path), pm)
    monkeypatch.undo()
    assert set(ctx.entries) == {"src", "src/z"}
    assert str(tmp_path / "docs") not in listed
    # "!build/keep" could match beneath build/, so build/ is listed (not read).
    assert str(tmp_path / "build") in listed
    assert str(tmp_path / "build" / "x") not in listed


def test_resolve_sources(tmp_path):
    make_tree(tmp_path, {"a.txt": "a", "b.txt": "b", "c.md": "c", "dir/d.txt": "d", "[x]": "x"})
    ctx = scan(str(tmp_path))
    assert ctx.resolve("*.txt") == ["a.txt", "b.txt"]
    assert ctx.resolve("/a.txt") == ["a.txt"]
    assert ctx.resolve("./dir/../a.txt") == ["a.txt"]
    assert ctx.resolve("dir/*") == ["dir/d.txt"]
    assert ctx.resolve("?.md") == ["c.md"]
    assert ctx.resolve("[ab].txt") == ["a.txt", "b.txt"]
    assert ctx.resolve("\\[x\\]") == ["[x]"]
    assert ctx.resolve(".") == ["."]
    with pytest.raises(MiniboxError, match="forbidden path outside the build context: ../etc/passwd"):
        ctx.resolve("../etc/passwd")
    with pytest.raises(MiniboxError, match="file not found in build context or excluded by .dockerignore: nope"):
        ctx.resolve("nope")
    with pytest.raises(MiniboxError, match="not found"):
        ctx.resolve("*.go")


def test_ignored_source_is_not_found(tmp_path):
    make_tree(tmp_path, {"app.log": "x", "Dockerfile": "FROM scratch\n"})
    ctx = scan(str(tmp_path), PatternMatcher(["*.log", "Dockerfile"]))
    with pytest.raises(MiniboxError, match="excluded by .dockerignore: app.log"):
        ctx.resolve("app.log")
    # An ignored Dockerfile is read by the builder, but COPY cannot see it.
    with pytest.raises(MiniboxError, match="Dockerfile"):
        ctx.resolve("Dockerfile")


def test_digest_covers_content_names_modes_and_link_targets_not_mtimes(tmp_path):
    make_tree(tmp_path, {"app/main.py": "print(1)\n", "app/lib.py": "x = 1\n"})
    os.symlink("main.py", tmp_path / "app" / "link")

    def digest():
        return scan(str(tmp_path)).sources_digest(["app"])

    d0 = digest()
    assert d0 == digest()
    os.utime(tmp_path / "app" / "main.py", (1, 1))
    assert digest() == d0, "mtimes must not matter"
    (tmp_path / "app" / "main.py").write_text("print(2)\n")
    d1 = digest()
    assert d1 != d0
    os.chmod(tmp_path / "app" / "main.py", 0o755)
    d2 = digest()
    assert d2 != d1
    os.rename(tmp_path / "app" / "lib.py", tmp_path / "app" / "lib2.py")
    d3 = digest()
    assert d3 != d2
    os.unlink(tmp_path / "app" / "link")
    os.symlink("lib2.py", tmp_path / "app" / "link")
    assert digest() != d3
    # A file outside the sources does not matter.
    (tmp_path / "other.txt").write_text("x")
    assert scan(str(tmp_path)).sources_digest(["app"]) == digest()


def test_digest_follows_top_level_symlink_inside_context(tmp_path):
    make_tree(tmp_path, {"real/f": "1"})
    os.symlink("real", tmp_path / "alias")
    os.symlink("/real/f", tmp_path / "abs")
    os.symlink("../../etc/passwd", tmp_path / "escape")
    ctx = scan(str(tmp_path))
    assert ctx.follow("alias") == "real"
    assert ctx.follow("abs") == "real/f"
    # A link that climbs out is resolved inside the context, never on the host.
    with pytest.raises(MiniboxError, match="not found"):
        ctx.follow("escape")
    d1 = ctx.sources_digest(["alias"])
    (tmp_path / "real" / "f").write_text("2")
    assert scan(str(tmp_path)).sources_digest(["alias"]) != d1


def test_memo_avoids_rehashing_unchanged_files(tmp_path):
    make_tree(tmp_path, {"a": "1", "b": "2"})
    memo: dict = {}
    ctx = scan(str(tmp_path), memo=memo)
    ctx.sources_digest(["."])
    assert ctx.files_hashed == 2
    ctx2 = scan(str(tmp_path), memo=memo)
    first = ctx2.sources_digest(["."])
    assert ctx2.files_hashed == 0
    (tmp_path / "a").write_text("changed")
    ctx3 = scan(str(tmp_path), memo=memo)
    assert ctx3.sources_digest(["."]) != first
    assert ctx3.files_hashed == 1


def test_scan_errors(tmp_path):
    with pytest.raises(MiniboxError, match="not found"):
        scan(str(tmp_path / "missing"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(MiniboxError, match="must be a directory"):
        scan(str(tmp_path / "f"))


def test_read_patterns_then_scan_with_leading_slash(tmp_path):
    make_tree(tmp_path, {"tmp/a": "a", "src/tmp/b": "b"})
    ctx = scan(str(tmp_path), PatternMatcher(read_patterns("/tmp\n")))
    assert "tmp" not in ctx.entries and "src/tmp/b" in ctx.entries


def test_hash_file_refuses_symlink(tmp_path):
    (tmp_path / "t").write_text("x")
    os.symlink("t", tmp_path / "l")
    with pytest.raises(OSError, match="open .*/l"):
        ctxmod.hash_file(str(tmp_path / "l"))
