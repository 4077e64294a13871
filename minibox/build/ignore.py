""".dockerignore: which context paths the build may see, with moby's semantics.

A faithful port of moby's ``patternmatcher`` and ``ignorefile`` packages, so a
``.dockerignore`` excludes exactly what it excludes under docker:

* a line starting with ``#`` is a comment; lines are trimmed; ``!`` marks an
  exception; each pattern is cleaned like Go's ``filepath.Clean`` and a
  leading ``/`` is dropped (``./a/../b`` → ``b``, ``/tmp`` → ``tmp``);
* ``*`` and ``?`` never cross ``/``; ``[...]`` is a character class; ``\\``
  escapes; ``**`` matches any number of directories, including none;
* a path is excluded when the *last* pattern matching it (or one of its
  parent directories) is not an exception;
* a pattern is checked with Go's ``filepath.Match`` syntax rules, so ``[``,
  ``[a-]`` or a trailing ``\\`` are errors, as under docker.

:meth:`PatternMatcher.could_include_below` lets the context walk skip a whole
excluded directory when no exception could re-include anything beneath it.
"""

import re
import warnings

from minibox.errors import MiniboxError

_REGEX_SPECIAL = set(".+()|{}$")


class PatternError(MiniboxError):
    """A .dockerignore pattern that is not valid ``filepath.Match`` syntax."""


def clean(path: str) -> str:
    """Go's ``path.Clean``: lexical, so ``a/../..`` is ``..`` and ``//a`` is ``/a``."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    text = "/".join(out)
    if rooted:
        return "/" + text
    return text or "."


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, normalised as moby's ignorefile.ReadAll does."""
    patterns = []
    for lineno, line in enumerate(text.splitlines()):
        if lineno == 0 and line.startswith("\ufeff"):
            line = line[1:]
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def check_syntax(pattern: str) -> None:
    """Raise PatternError where Go's filepath.Match reports ErrBadPattern."""
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise PatternError(f"syntax error in pattern {pattern!r}")
            i += 2
            continue
        if ch != "[":
            i += 1
            continue
        i += 1
        if i < n and pattern[i] == "^":
            i += 1
        nrange = 0
        while True:
            if i < n and pattern[i] == "]" and nrange > 0:
                i += 1
                break
            i = _class_char(pattern, i)
            if i < n and pattern[i] == "-":
                i = _class_char(pattern, i + 1)
            nrange += 1


def _class_char(pattern: str, i: int) -> int:
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise PatternError(f"syntax error in pattern {pattern!r}")
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise PatternError(f"syntax error in pattern {pattern!r}")
    return i + 1


class Pattern:
    """One cleaned pattern; matching uses moby's fast paths, else a regexp."""

    __slots__ = ("dirs", "exclusion", "kind", "regex", "text")

    def __init__(self, text: str, exclusion: bool):
        self.text = text
        self.exclusion = exclusion
        self.dirs = text.split("/")
        self.kind, self.regex = self._compile(text)

    def __repr__(self) -> str:
        return f"Pattern({'!' if self.exclusion else ''}{self.text})"

    @staticmethod
    def _compile(pattern: str):
        reg = ["^"]
        kind = "exact"
        i, n = 0, len(pattern)
        first = True
        while i < n:
            ch = pattern[i]
            i += 1
            if ch == "*":
                if i < n and pattern[i] == "*":
                    i += 1
                    if i < n and pattern[i] == "/":
                        i += 1
                    if i >= n:
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            reg.append(".*")
                            kind = "regex"
                    else:
                        reg.append("(.*/)?")
                        kind = "regex"
                    if first:
                        kind = "suffix"
                else:
                    reg.append("[^/]*")
                    kind = "regex"
            elif ch == "?":
                reg.append("[^/]")
                kind = "regex"
            elif ch in _REGEX_SPECIAL:
                reg.append("\\" + ch)
            elif ch == "\\":
                if i < n:
                    reg.append("\\" + pattern[i])
                    i += 1
                    kind = "regex"
                else:
                    reg.append("\\\\")
            elif ch in "[]":
                reg.append(ch)
                kind = "regex"
            else:
                reg.append(ch)
            first = False
        if kind != "regex":
            return kind, None
        # \Z, not $: Python's $ also matches before a trailing newline.
        reg.append("\\Z")
        try:
            with warnings.catch_warnings():
                # "[[]" is a valid class for Go; Python only warns about it.
                warnings.simplefilter("ignore", FutureWarning)
                return kind, re.compile("".join(reg))
        except re.error as e:
            raise PatternError(f"syntax error in pattern {pattern!r}: {e}") from None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        return self.regex.match(path) is not None


class PatternMatcher:
    """An ordered list of patterns; the last one that matches decides."""

    def __init__(self, patterns: list[str]):
        self.patterns: list[Pattern] = []
        for p in patterns:
            p = p.strip()
            if not p:
                continue
            p = clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise PatternError('illegal exclusion pattern: "!"')
                p = p[1:]
            check_syntax(p)
            self.patterns.append(Pattern(p, exclusion))
        self.exclusions = any(p.exclusion for p in self.patterns)

    def matches(self, path: str, parent: list[bool] | None = None) -> tuple[bool, list[bool]]:
        """Whether ``path`` (slash-separated, relative) is excluded.

        ``parent`` is the second value this returned for the parent directory
        (moby's MatchesUsingParentResults), which spares re-matching every
        ancestor; without it every ancestor is tried (MatchesOrParentMatches).
        """
        matched = False
        info = [False] * len(self.patterns)
        ancestors = None
        for i, pattern in enumerate(self.patterns):
            hit = parent[i] if parent else False
            if not hit:
                if pattern.exclusion != matched:
                    continue
                hit = pattern.match(path)
                if not hit and not parent:
                    if ancestors is None:
                        parts = path.split("/")[:-1]
                        ancestors = ["/".join(parts[: k + 1]) for k in range(len(parts))]
                    hit = any(pattern.match(a) for a in ancestors)
            info[i] = hit
            if hit:
                matched = not pattern.exclusion
        return matched, info

    def excluded(self, path: str) -> bool:
        """Whether ``path`` is excluded (``.`` never is: docker never excludes the whole context)."""
        path = clean(path)
        if path == ".":
            return False
        return self.matches(path)[0]

    def could_include_below(self, directory: str) -> bool:
        """Whether an exception pattern could re-include ``directory`` or something under it.

        Compares the exception's leading path elements with the directory's:
        each must match (``**`` matches anything), so ``!src/keep`` keeps
        ``src`` open but not ``docs``. Conservative: a False answer is exact.
        """
        parts = directory.split("/")
        for pattern in self.patterns:
            if pattern.exclusion and _prefix_compatible(pattern.dirs, parts):
                return True
        return False


def _prefix_compatible(pat_dirs: list[str], parts: list[str]) -> bool:
    for k, part in enumerate(parts):
        if k >= len(pat_dirs):
            return True
        elem = pat_dirs[k]
        if "**" in elem:
            return True
        if not Pattern(elem, False).match(part):
            return False
    return True


def load(context_dir: str, dockerfile: str | None = None) -> PatternMatcher:
    """The matcher for a context: ``<Dockerfile>.dockerignore`` beside the Dockerfile wins
    over ``<context>/.dockerignore`` (BuildKit's rule); no file means nothing is excluded."""
    import os

    candidates = []
    if dockerfile:
        candidates.append(dockerfile + ".dockerignore")
    candidates.append(os.path.join(context_dir, ".dockerignore"))
    for path in candidates:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise MiniboxError(f"read {path}: {e.strerror}") from None
        try:
            return PatternMatcher(read_patterns(text))
        except PatternError as e:
            raise PatternError(f"{path}: {e}") from None
    return PatternMatcher([])
