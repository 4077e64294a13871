"""minibox.build.ignore against moby's patternmatcher and ignorefile test cases."""

import pytest

from minibox.build.ignore import (
    PatternError,
    PatternMatcher,
    clean,
    load,
    read_patterns,
)

# (pattern, path, exact): exact = the pattern itself matches the path;
# "inexact" = it only matches a parent directory; None = no match at all.
EXACT, INEXACT, FAIL = "exact", "inexact", None

MOBY_CASES = [
    ("**", "file", EXACT),
    ("**", "file/", EXACT),
    ("**/", "file", EXACT),
    ("**/", "file/", EXACT),
    ("**", "/", EXACT),
    ("**/", "/", EXACT),
    ("**", "dir/file", EXACT),
    ("**/", "dir/file", EXACT),
    ("**", "dir/file/", EXACT),
    ("**/", "dir/file/", EXACT),
    ("**/**", "dir/file", EXACT),
    ("**/**", "dir/file/", EXACT),
    ("dir/**", "dir/file", EXACT),
    ("dir/**", "dir/file/", EXACT),
    ("dir/**", "dir/dir2/file", EXACT),
    ("dir/**", "dir/dir2/file/", EXACT),
    ("**/dir", "dir", EXACT),
    ("**/dir", "dir/file", INEXACT),
    ("**/dir2/*", "dir/dir2/file", EXACT),
    ("**/dir2/*", "dir/dir2/file/", INEXACT),
    ("**/dir2/**", "dir/dir2/dir3/file", EXACT),
    ("**/dir2/**", "dir/dir2/dir3/file/", EXACT),
    ("**file", "file", EXACT),
    ("**file", "dir/file", EXACT),
    ("**/file", "dir/file", EXACT),
    ("**file", "dir/dir/file", EXACT),
    ("**/file", "dir/dir/file", EXACT),
    ("**/file*", "dir/dir/file", EXACT),
    ("**/file*", "dir/dir/file.txt", EXACT),
    ("**/file*txt", "dir/dir/file.txt", EXACT),
    ("**/file*.txt", "dir/dir/file.txt", EXACT),
    ("**/file*.txt*", "dir/dir/file.txt", EXACT),
    ("**/**/*.txt", "dir/dir/file.txt", EXACT),
    ("**/**/*.txt2", "dir/dir/file.txt", FAIL),
    ("**/*.txt", "file.txt", EXACT),
    ("**/**/*.txt", "file.txt", EXACT),
    ("a**/*.txt", "a/file.txt", EXACT),
    ("a**/*.txt", "a/dir/file.txt", EXACT),
    ("a**/*.txt", "a/dir/dir/file.txt", EXACT),
    ("a/*.txt", "a/dir/file.txt", FAIL),
    ("a/*.txt", "a/file.txt", EXACT),
    ("a/*.txt**", "a/file.txt", EXACT),
    ("a[b-d]e", "ae", FAIL),
    ("a[b-d]e", "ace", EXACT),
    ("a[b-d]e", "aae", FAIL),
    ("a[^b-d]e", "aze", EXACT),
    (".*", ".foo", EXACT),
    (".*", "foo", FAIL),
    ("abc.def", "abcdef", FAIL),
    ("abc.def", "abc.def", EXACT),
    ("abc.def", "abcZdef", FAIL),
    ("abc?def", "abcZdef", EXACT),
    ("abc?def", "abcdef", FAIL),
    ("**/foo/bar", "foo/bar", EXACT),
    ("**/foo/bar", "dir/foo/bar", EXACT),
    ("**/foo/bar", "dir/dir2/foo/bar", EXACT),
    ("abc/**", "abc", FAIL),
    ("abc/**", "abc/def", EXACT),
    ("abc/**", "abc/def/ghi", EXACT),
    ("**/.foo", ".foo", EXACT),
    ("**/.foo", "bar.foo", FAIL),
    ("a(b)c/def", "a(b)c/def", EXACT),
    ("a(b)c/def", "a(b)c/xyz", FAIL),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", EXACT),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", EXACT),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", EXACT),
    ("a\\\\", "a\\", EXACT),
    ("a\\*b", "a*b", EXACT),
]

MULTI_CASES = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
]


def _exact(pm: PatternMatcher, path: str) -> bool:
    """moby's MatchesExact: no parent matching."""
    matched = False
    for p in pm.patterns:
        if p.exclusion != matched:
            continue
        if p.match(path):
            matched = not p.exclusion
    return matched


def _with_parent_results(pm: PatternMatcher, path: str) -> bool:
    """Walk the parents first and feed their results, as a context walk does."""
    parts = path.split("/")[:-1]
    info = None
    for k in range(len(parts)):
        _, info = pm.matches("/".join(parts[: k + 1]), info)
    return pm.matches(path, info)[0]


@pytest.mark.parametrize("pattern,path,kind", MOBY_CASES)
def test_moby_single_pattern_cases(pattern, path, kind):
    pm = PatternMatcher([pattern])
    assert _exact(pm, path) == (kind == EXACT)
    assert pm.matches(path)[0] == (kind is not FAIL)
    assert _with_parent_results(pm, path) == (kind is not FAIL)


@pytest.mark.parametrize("patterns,path,excluded", MULTI_CASES)
def test_moby_multi_pattern_cases(patterns, path, excluded):
    pm = PatternMatcher(patterns)
    assert pm.matches(path)[0] == excluded
    assert _with_parent_results(pm, path) == excluded


# Go's filepath.Match cases as moby runs them through Matches().
GO_MATCH_CASES = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True),
    ("a*", "abc", True), ("a*", "ab/c", True), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True), ("a\\*b", "ab", False), ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True), ("a???b", "a☺b", False), ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False), ("a?b", "a/b", False), ("a*b", "a/b", False),
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "x", True), ("[x\\-]", "-", True),
    ("[x\\-]", "z", False), ("[\\-x]", "x", True), ("[\\-x]", "-", True), ("[\\-x]", "a", False),
    ("*x", "xxx", True),
]

GO_BAD_PATTERNS = ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "!"]


@pytest.mark.parametrize("pattern,path,match", GO_MATCH_CASES)
def test_go_filepath_match_cases(pattern, path, match):
    assert PatternMatcher([pattern]).excluded(path) == match


@pytest.mark.parametrize("pattern", GO_BAD_PATTERNS)
def test_bad_patterns_are_errors(pattern):
    with pytest.raises(PatternError):
        PatternMatcher([pattern])


def test_moby_simple_cases():
    assert PatternMatcher(["*"]).excluded("fileutils.go")
    assert PatternMatcher(["*.go"]).excluded("fileutils.go")
    # An exception before the pattern is overridden by it: last match wins.
    assert PatternMatcher(["!fileutils.go", "*.go"]).excluded("fileutils.go")
    assert not PatternMatcher(["*.go", "!fileutils.go"]).excluded("fileutils.go")
    for patterns in (["docs", "!docs/README.md"], ["docs/", "!docs/README.md"],
                     ["docs/*", "!docs/README.md"]):
        pm = PatternMatcher(patterns)
        assert not pm.excluded("docs/README.md"), patterns
        assert pm.excluded("docs/other.md"), patterns
    # The context itself is never excluded.
    assert not PatternMatcher(["*.go", "**"]).excluded(".")
    assert not PatternMatcher([]).excluded("any/path/there")


def test_patterns_are_trimmed_and_cleaned():
    pm = PatternMatcher(["docs", "  !docs/README.md  ", "", "./a/../b//c/"])
    assert [p.text for p in pm.patterns] == ["docs", "docs/README.md", "b/c"]
    assert pm.exclusions


def test_clean_is_go_path_clean():
    assert clean("") == "."
    assert clean("a/../..") == ".."
    assert clean("//a//b/") == "/a/b"
    assert clean("/../x") == "/x"
    assert clean("./a/./b/..") == "a"


def test_read_patterns_like_moby_ignorefile():
    text = (
        "\ufeff# a comment\n"
        "  # not a comment: leading space, then trimmed\n"
        "/absolute/path\n"
        "./dot/slash\n"
        "!  /negated/abs\n"
        "\n"
        "   \n"
        "trailing/   \n"
        "a/../b\n"
        "/\n"
    )
    assert read_patterns(text) == [
        "# not a comment: leading space, then trimmed",
        "absolute/path",
        "dot/slash",
        "!negated/abs",
        "trailing",
        "b",
        "/",
    ]


def test_leading_slash_matches_from_context_root():
    pm = PatternMatcher(read_patterns("/tmp\n"))
    assert pm.excluded("tmp/x")
    assert not pm.excluded("sub/tmp")


def test_seed_dockerignore():
    pm = PatternMatcher(read_patterns(".git\nnode_modules\ntarget\ndist\n*.log\n"))
    for path in (".git/config", "node_modules/left-pad/index.js", "target/debug/app",
                 "dist/app.js", "debug.log"):
        assert pm.excluded(path), path
    for path in ("src/app.js", "src/debug.log", "package.json", "src/node_modules/x"):
        assert not pm.excluded(path), path
    assert PatternMatcher(["**/*.log"]).excluded("src/debug.log")


def test_could_include_below():
    pm = PatternMatcher(["build", "!build/keep/me.txt", "docs", "vendor/**", "!**/LICENSE"])
    assert pm.could_include_below("build")
    assert pm.could_include_below("build/keep")
    # "**/LICENSE" could match under any directory.
    assert pm.could_include_below("docs")
    pm = PatternMatcher(["build", "docs", "!build/keep/*.txt"])
    assert pm.could_include_below("build/keep")
    assert not pm.could_include_below("docs")
    assert not pm.could_include_below("build/other")
    assert not PatternMatcher(["build"]).could_include_below("build")


def test_load_prefers_dockerfile_specific_ignore(tmp_path):
    (tmp_path / ".dockerignore").write_text("a\n")
    assert load(str(tmp_path)).excluded("a")
    df = tmp_path / "app.Dockerfile"
    df.write_text("FROM scratch\n")
    (tmp_path / "app.Dockerfile.dockerignore").write_text("b\n")
    pm = load(str(tmp_path), str(df))
    assert pm.excluded("b") and not pm.excluded("a")
    assert not load(str(tmp_path / "nonexistent")).patterns


def test_load_names_the_file_on_a_bad_pattern(tmp_path):
    (tmp_path / ".dockerignore").write_text("ok\n[\n")
    with pytest.raises(PatternError, match=r"\.dockerignore: syntax error in pattern"):
        load(str(tmp_path))
