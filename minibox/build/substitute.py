"""Docker's variable substitution for Dockerfile words ($VAR, ${VAR:-default} ...).

The builder (not a shell) expands variables in ENV, ADD, COPY, WORKDIR, EXPOSE,
LABEL, USER, VOLUME, STOPSIGNAL, ARG and FROM. It follows BuildKit's shell
lexer rather than POSIX sh, because a Dockerfile must mean the same thing under
minibox as under docker:

* single quotes keep everything literal; double quotes allow ``$`` and let the
  escape character escape only ``"``, ``$`` and itself;
* the escape character (``\\`` or the ``# escape=`` directive's backtick) makes
  the next character literal outside quotes;
* quotes are removed from the result;
* ``$NAME`` / ``${NAME}`` of an unset variable is empty; ``${N:-w}``/``${N-w}``
  (default when empty/unset), ``${N:+w}``/``${N+w}`` (alternative when
  non-empty/set), ``${N:?msg}``/``${N?msg}`` (error); ``w`` is itself expanded;
* ``$`` not followed by a name is a literal ``$``.

:func:`expand_words` also splits into words the way BuildKit's ``ProcessWords``
does: at unquoted whitespace, including whitespace produced by an unquoted
variable's value.
"""

from collections.abc import Mapping

_EOF = ""
_SPECIAL_PARAMS = "@*#?-$!0"


class SubstitutionError(ValueError):
    """A malformed word (unterminated quote, bad ``${...}``) or a ``${N?msg}`` failure."""


class _Words:
    """Collects words the way BuildKit's wordsStruct does (raw vs splittable text)."""

    def __init__(self):
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str):
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            value = self.env[name]
            return ("" if value is None else value), value is not None
        return "", False

    def process_until(self, stop: str) -> tuple[str, list[str]]:
        """Expand until ``stop`` (consumed) or end of text when ``stop`` is empty."""
        result = []
        words = _Words()
        while self.peek() != _EOF:
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == "'":
                piece = self.single_quote()
                words.add_raw(piece)
            elif ch == '"':
                piece = self.double_quote()
                words.add_raw(piece)
            elif ch == "$":
                piece = self.dollar()
                words.add_string(piece)
            else:
                ch = self.next()
                if ch == self.escape:
                    ch = self.next()
                    if ch == _EOF:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                piece = ch
            result.append(piece)
        if stop:
            raise SubstitutionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quote(self) -> str:
        self.next()
        out = []
        while True:
            ch = self.next()
            if ch == _EOF:
                raise SubstitutionError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.next()
        out = []
        while True:
            ch = self.peek()
            if ch == _EOF:
                raise SubstitutionError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape and self.peek() in ('"', "$", self.escape) and self.peek() != _EOF:
                ch = self.next()
            out.append(ch)

    def name(self) -> str:
        out = []
        while self.peek() != _EOF:
            ch = self.peek()
            if not out and ch.isdigit():
                while self.peek() != _EOF and self.peek().isdigit():
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalnum() or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.lookup(name)[0]
        self.next()
        ch = self.peek()
        if ch == _EOF:
            raise SubstitutionError("syntax error: missing '}'")
        if ch in "{}:":
            raise SubstitutionError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            return self.lookup(name)[0]
        if ch == _EOF:
            raise SubstitutionError("syntax error: missing '}'")
        colon = ch == ":"
        modifier = self.next() if colon else ch
        if modifier not in ("-", "+", "?"):
            raise SubstitutionError(f"unsupported modifier ({modifier}) in substitution")
        try:
            word, _ = self.process_until("}")
        except SubstitutionError:
            if self.peek() == _EOF:
                raise SubstitutionError("syntax error: missing '}'") from None
            raise
        value, is_set = self.lookup(name)
        present = bool(value) if colon else is_set
        if modifier == "-":
            return value if present else word
        if modifier == "+":
            return word if present else ""
        if not present:
            raise SubstitutionError(f"{name}: {word or 'is not allowed to be unset'}")
        return value


def expand_word(word: str, env: Mapping[str, str | None], escape: str = "\\") -> str:
    """Expand variables and remove quotes in one word, as docker does for WORKDIR and ENV values."""
    return _Lexer(word, env, escape).process_until(_EOF)[0]


def expand_words(text: str, env: Mapping[str, str | None], escape: str = "\\") -> list[str]:
    """Expand and split ``text`` into words at unquoted whitespace (BuildKit's ProcessWords)."""
    return _Lexer(text, env, escape).process_until(_EOF)[1]
