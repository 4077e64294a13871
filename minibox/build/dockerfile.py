"""Dockerfile text → a list of :class:`Instruction`, with docker's syntax rules.

The parser follows BuildKit's frontend, because a Dockerfile must mean the same
under minibox as under ``docker build``:

* parser directives (``# escape=`` ``# syntax=``) only at the very top, before
  any comment, blank line or instruction; ``escape`` is ``\\`` or a backtick;
* a line ending in the escape character continues on the next one; comment
  lines and blank lines inside a continuation are dropped;
* ``#`` starts a comment only at the beginning of a line;
* ``--flag=value`` words right after the keyword are flags, checked per
  instruction (``COPY --from= --chown= --chmod=`` ...);
* RUN/CMD/ENTRYPOINT/SHELL/COPY/ADD/VOLUME accept a JSON array (exec form);
  anything that is not a valid JSON array of strings is the shell form;
* ENV/LABEL take ``k=v`` pairs (quotes kept until substitution) or the legacy
  ``ENV k the rest of the line``.

Variables are not substituted here: which variables a word sees depends on the
stage (ARGs declared, ENV set, the base image's Env), so substitution happens
in :mod:`minibox.build.stages` when the instruction is reached. Every syntax
error names the file, the line and the instruction, e.g.
``Dockerfile:7: unknown instruction: RUNN``.
"""

import json
import re
from dataclasses import dataclass, field, replace

from minibox.errors import MiniboxError

_DIRECTIVE = re.compile(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")
_KNOWN_DIRECTIVES = ("escape", "syntax", "check")

# Instruction → flags it accepts; True marks a boolean flag, "multi" a repeatable one.
_FLAGS: dict[str, dict[str, object]] = {
    "FROM": {"platform": False},
    "RUN": {"mount": "multi", "network": False, "security": False},
    "COPY": {"from": False, "chown": False, "chmod": False, "link": True,
             "parents": True, "exclude": "multi"},
    "ADD": {"chown": False, "chmod": False, "link": True, "checksum": False,
            "keep-git-dir": True, "exclude": "multi"},
    "HEALTHCHECK": {"interval": False, "timeout": False, "start-period": False,
                    "start-interval": False, "retries": False},
}

INSTRUCTIONS = (
    "FROM", "RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "ENV", "ARG", "WORKDIR",
    "USER", "EXPOSE", "LABEL", "VOLUME", "SHELL", "STOPSIGNAL", "ONBUILD",
    "HEALTHCHECK", "MAINTAINER",
)

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")


class DockerfileError(MiniboxError):
    """A Dockerfile syntax error; the message starts with ``file:line:``."""


@dataclass
class Instruction:
    """One Dockerfile instruction.

    ``cmd`` is the upper-case keyword; ``args`` its arguments (for a shell form
    RUN/CMD/ENTRYPOINT one string, for ENV/LABEL alternating keys and values,
    for FROM the words); ``flags`` maps flag name → value (True for a bare
    boolean flag, a list for repeatable ones); ``json`` tells the exec form;
    ``original`` is the text as written with continuations joined.
    """

    cmd: str
    args: list[str]
    flags: dict[str, object] = field(default_factory=dict)
    original: str = ""
    line: int = 0
    end_line: int = 0
    json: bool = False
    filename: str = "Dockerfile"
    escape: str = "\\"

    def error(self, message: str) -> DockerfileError:
        """An error naming this instruction's file and line."""
        return DockerfileError(f"{self.filename}:{self.line}: {message}")

    def flag(self, name: str, default=None):
        return self.flags.get(name, default)

    def text(self) -> str:
        """A canonical one-line form (after substitution): for cache keys and history."""
        parts = [self.cmd]
        for name, value in sorted(self.flags.items()):
            values = value if isinstance(value, list) else [value]
            for v in values:
                parts.append(f"--{name}" if v is True else f"--{name}={v}")
        if self.cmd in ("ENV", "LABEL"):
            parts += [f"{k}={v}" for k, v in self.pairs()]
        elif self.json:
            parts.append(json.dumps(self.args))
        else:
            parts += self.args
        return " ".join(parts)

    def pairs(self) -> list[tuple[str, str]]:
        """ENV/LABEL arguments as (key, value) pairs."""
        return list(zip(self.args[0::2], self.args[1::2]))

    def with_args(self, args: list[str], flags: dict | None = None) -> "Instruction":
        return replace(self, args=list(args), flags=dict(self.flags if flags is None else flags))

    def __str__(self) -> str:
        return self.original


@dataclass
class Dockerfile:
    """A parsed Dockerfile: its instructions and parser directives."""

    instructions: list[Instruction]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)
    filename: str = "Dockerfile"


def parse(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile ``text``; raise :class:`DockerfileError` naming file and line."""
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    escape, directives, start = _read_directives(lines, filename)
    cont = re.compile(re.escape(escape) + r"[ \t]*$")
    instructions = []
    i = start
    while i < len(lines):
        raw = lines[i]
        i += 1
        first_line = i
        line = raw.lstrip()
        if line.startswith("#"):
            continue
        line, more = _trim_continuation(line, cont)
        if not more and not line.strip():
            continue
        while more and i < len(lines):
            raw = lines[i]
            i += 1
            stripped = raw.lstrip()
            if stripped.startswith("#") or not stripped:
                continue
            piece, more = _trim_continuation(raw, cont)
            line += piece
        if not line.strip():
            continue
        instructions.append(_parse_line(line, filename, first_line, i, escape))
    if not instructions:
        raise DockerfileError(f"{filename}: the Dockerfile cannot be empty")
    return Dockerfile(instructions, escape, directives, filename)


def parse_file(path: str, name: str | None = None) -> Dockerfile:
    """Read and parse a Dockerfile from ``path``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise MiniboxError(f"failed to read dockerfile: open {path}: no such file or directory") from None
    except UnicodeDecodeError as e:
        raise MiniboxError(f"failed to read dockerfile {path}: not UTF-8 text ({e.reason})") from None
    return parse(text, name or path)


def _read_directives(lines: list[str], filename: str) -> tuple[str, dict[str, str], int]:
    """Parser directives at the top; the first line that is not one ends them."""
    directives: dict[str, str] = {}
    i = 0
    for i, line in enumerate(lines):
        m = _DIRECTIVE.match(line)
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key in _KNOWN_DIRECTIVES:
            if key in directives:
                raise DockerfileError(f"{filename}:{i + 1}: only one {key} parser directive can be used")
            directives[key] = value
    else:
        i = len(lines)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"{filename}:1: invalid escape token '{escape}' does not match ` or \\")
    # Directive lines are also comments: parsing restarts after them.
    return escape, directives, i


def _trim_continuation(line: str, cont: re.Pattern) -> tuple[str, bool]:
    m = cont.search(line)
    if m:
        return line[: m.start()], True
    return line, False


def _parse_line(line: str, filename: str, first: int, last: int, escape: str) -> Instruction:
    stripped = line.strip()
    parts = stripped.split(None, 1)
    word = parts[0]
    rest = parts[1] if len(parts) > 1 else ""
    cmd = word.upper()
    instr = Instruction(cmd, [], {}, stripped, first, last, False, filename, escape)
    if cmd not in INSTRUCTIONS:
        raise instr.error(f"unknown instruction: {word}{_suggest(cmd)}")
    rest, flag_words = _extract_flags(rest)
    instr.flags = _check_flags(instr, flag_words)
    _PARSERS[cmd](instr, rest)
    return instr


def _suggest(cmd: str) -> str:
    import difflib  # only on the error path

    close = difflib.get_close_matches(cmd, INSTRUCTIONS, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """Split leading ``--name=value`` words off ``line`` (quotes removed); ``--`` ends them."""
    words: list[str] = []
    pos, n = 0, len(line)
    while True:
        while pos < n and line[pos].isspace():
            pos += 1
        if not line.startswith("--", pos):
            return line[pos:], words
        word, quote, blank_ok = [], "", False
        while pos < n:
            ch = line[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == "\\" and pos + 1 < n:
                    pos += 1
                    word.append(line[pos])
                else:
                    word.append(ch)
            elif ch.isspace():
                break
            elif ch in ("'", '"'):
                quote, blank_ok = ch, True
            elif ch == "\\" and pos + 1 < n:
                pos += 1
                word.append(line[pos])
            elif ch != "\\":
                word.append(ch)
            pos += 1
        text = "".join(word)
        if text == "--":
            return line[pos:].lstrip(), words
        if text or blank_ok:
            words.append(text)


def _check_flags(instr: Instruction, words: list[str]) -> dict[str, object]:
    allowed = _FLAGS.get(instr.cmd, {})
    flags: dict[str, object] = {}
    for word in words:
        name, has_value, value = word[2:].partition("=")
        kind = allowed.get(name)
        if name not in allowed:
            raise instr.error(f"unknown flag: --{name} for {instr.cmd}")
        if kind is True:
            if has_value and value.lower() not in ("true", "false"):
                raise instr.error(f"expecting boolean value for flag --{name}, not: {value}")
            flags[name] = (not has_value) or value.lower() == "true"
            continue
        if not has_value:
            raise instr.error(f"missing a value on flag: --{name}")
        if kind == "multi":
            flags.setdefault(name, []).append(value)  # type: ignore[union-attr]
        elif name in flags:
            raise instr.error(f"duplicate flag specified: --{name}")
        else:
            flags[name] = value
    return flags


def _parse_words(rest: str, escape: str) -> list[str]:
    """Split at unquoted whitespace, keeping quotes and escapes (BuildKit's parseWords)."""
    words: list[str] = []
    word, quote, blank_ok, in_word = "", "", False, False
    pos, n = 0, len(rest)
    while pos < n:
        ch = rest[pos]
        if not in_word:
            if ch.isspace():
                pos += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if pos + 1 == n:
                    pos += 1
                    continue
                word += ch
                pos += 1
                ch = rest[pos]
            word += ch
        elif ch.isspace():
            if blank_ok or word:
                words.append(word)
            word, blank_ok, in_word = "", False, False
        else:
            if ch in ("'", '"'):
                quote, blank_ok = ch, True
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word += ch
                pos += 1
                ch = rest[pos]
            word += ch
        pos += 1
    if in_word and (blank_ok or word):
        words.append(word)
    return words


def _maybe_json(rest: str) -> list[str] | None:
    """The JSON array of strings in ``rest``, or None for the shell form."""
    text = rest.lstrip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        return None
    return value


def _exec_or_shell(instr: Instruction, rest: str, required: bool = True) -> None:
    value = _maybe_json(rest)
    if value is not None:
        instr.args, instr.json = value, True
    elif rest.strip():
        instr.args = [rest.strip()]
    elif required:
        raise instr.error(f"{instr.cmd} requires at least one argument")
    else:
        instr.args = []


def _p_from(instr: Instruction, rest: str) -> None:
    words = rest.split()
    if len(words) == 3 and words[1].lower() == "as":
        if not _STAGE_NAME.match(words[2].lower()):
            raise instr.error(
                f"invalid name for build stage: {words[2]!r}, name can't start with a number or contain symbols")
        words = [words[0], "AS", words[2].lower()]
    elif len(words) != 1:
        raise instr.error("FROM requires either one or three arguments")
    instr.args = words


def _p_run(instr: Instruction, rest: str) -> None:
    _exec_or_shell(instr, rest)


def _p_shell(instr: Instruction, rest: str) -> None:
    value = _maybe_json(rest)
    if value is None:
        raise instr.error("SHELL requires the arguments to be in JSON form")
    if not value:
        raise instr.error("SHELL requires at least one argument")
    instr.args, instr.json = value, True


def _p_copy(instr: Instruction, rest: str) -> None:
    value = _maybe_json(rest)
    if value is not None:
        instr.args, instr.json = value, True
    else:
        instr.args = rest.split()
    if len(instr.args) < 2:
        raise instr.error(
            f"{instr.cmd} requires at least two arguments, but only one was provided. "
            "Destination could not be determined.")


def _p_volume(instr: Instruction, rest: str) -> None:
    value = _maybe_json(rest)
    if value is not None:
        instr.args, instr.json = value, True
    else:
        instr.args = rest.split()
    if not instr.args:
        raise instr.error("VOLUME requires at least one argument")
    if any(not a.strip() for a in instr.args):
        raise instr.error("VOLUME specified can not be an empty string")


def _p_key_values(instr: Instruction, rest: str) -> None:
    words = _parse_words(rest, instr.escape)
    if not words:
        raise instr.error(f"{instr.cmd} requires at least one argument")
    if "=" not in words[0]:
        # Legacy form: KEY name the rest of the line
        parts = rest.strip().split(None, 1)
        if len(parts) < 2:
            raise instr.error(f"{instr.cmd} must have two arguments")
        instr.args = [parts[0], parts[1]]
        return
    args = []
    for word in words:
        if "=" not in word:
            raise instr.error(
                f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        key, _, value = word.partition("=")
        if not key:
            raise instr.error(f"{instr.cmd} names can not be blank")
        args += [key, value]
    instr.args = args


def _p_arg(instr: Instruction, rest: str) -> None:
    words = _parse_words(rest, instr.escape)
    if not words:
        raise instr.error("ARG requires at least one argument")
    for word in words:
        if word.split("=", 1)[0] == "":
            raise instr.error("ARG names can not be blank")
    instr.args = words


def _p_one(instr: Instruction, rest: str) -> None:
    if not rest.strip():
        raise instr.error(f"{instr.cmd} requires exactly one argument")
    instr.args = [rest.strip()]


def _p_expose(instr: Instruction, rest: str) -> None:
    instr.args = rest.split()
    if not instr.args:
        raise instr.error("EXPOSE requires at least one argument")


def _p_onbuild(instr: Instruction, rest: str) -> None:
    trigger = rest.strip()
    if not trigger:
        raise instr.error("ONBUILD requires at least one argument")
    sub = trigger.split(None, 1)[0].upper()
    if sub == "ONBUILD":
        raise instr.error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if sub in ("FROM", "MAINTAINER"):
        raise instr.error(f"{sub} isn't allowed as an ONBUILD trigger")
    # Check the trigger's own syntax now, as docker does, but keep it as text.
    _parse_line(trigger, instr.filename, instr.line, instr.end_line, instr.escape)
    instr.args = [trigger]


def _p_healthcheck(instr: Instruction, rest: str) -> None:
    words = rest.split(None, 1)
    if not words:
        raise instr.error("HEALTHCHECK requires at least one argument")
    kind = words[0].upper()
    if kind == "NONE":
        if len(words) > 1 or instr.flags:
            raise instr.error("HEALTHCHECK NONE takes no arguments")
        instr.args = ["NONE"]
        return
    if kind != "CMD":
        raise instr.error(f"Unknown type {words[0]!r} in HEALTHCHECK (try CMD)")
    sub = Instruction("CMD", [], filename=instr.filename, line=instr.line)
    _exec_or_shell(sub, words[1] if len(words) > 1 else "")
    instr.args, instr.json = ["CMD"] + sub.args, sub.json


_PARSERS = {
    "FROM": _p_from,
    "RUN": _p_run,
    "CMD": _p_run,
    "ENTRYPOINT": _p_run,
    "SHELL": _p_shell,
    "COPY": _p_copy,
    "ADD": _p_copy,
    "VOLUME": _p_volume,
    "ENV": _p_key_values,
    "LABEL": _p_key_values,
    "ARG": _p_arg,
    "WORKDIR": _p_one,
    "MAINTAINER": _p_one,
    "USER": _p_one,
    "STOPSIGNAL": _p_one,
    "EXPOSE": _p_expose,
    "ONBUILD": _p_onbuild,
    "HEALTHCHECK": _p_healthcheck,
}
