"""Dockerfile parsing, stages and variable substitution (minibox.build.dockerfile/stages/substitute)."""

import pytest

from minibox.build.dockerfile import DockerfileError, parse, parse_file
from minibox.build.stages import StageVars, plan
from minibox.build.substitute import SubstitutionError, expand_word, expand_words
from minibox.errors import MiniboxError


def one(text: str):
    df = parse("FROM scratch\n" + text)
    assert len(df.instructions) == 2, df.instructions
    return df.instructions[1]


# -- lines, comments, continuations, directives ----------------------------------

def test_comments_blank_lines_and_line_numbers():
    df = parse("# top comment\n\nFROM busybox\n  # indented comment\nRUN echo hi # not a comment\n")
    assert [(i.cmd, i.line) for i in df.instructions] == [("FROM", 3), ("RUN", 5)]
    assert df.instructions[1].args == ["echo hi # not a comment"]


def test_continuations_skip_comments_and_empty_lines():
    df = parse("FROM busybox\nRUN apk add \\\n# a comment inside\n\n    curl \\  \n    git\nUSER nobody\n")
    run = df.instructions[1]
    assert run.args == ["apk add     curl     git"]
    assert (run.line, run.end_line) == (2, 6)
    assert df.instructions[2].line == 7


def test_continuation_at_end_of_file():
    df = parse("FROM busybox\nRUN echo a \\")
    assert df.instructions[1].args == ["echo a"]


def test_keywords_are_case_insensitive_and_original_is_kept():
    ins = one("run   echo   hi  ")
    assert ins.cmd == "RUN" and ins.args == ["echo   hi"] and ins.original == "run   echo   hi"


def test_escape_directive_backtick():
    df = parse("# escape=`\nFROM busybox\nCOPY C:\\src C:\\dst\nRUN dir `\n  C:\\\n")
    assert df.escape == "`"
    assert df.instructions[1].args == ["C:\\src", "C:\\dst"]
    assert df.instructions[2].args == ["dir   C:\\"]


def test_directives_only_at_the_top():
    df = parse("FROM busybox\n# escape=`\nRUN a \\\n b\n")
    assert df.escape == "\\" and df.instructions[1].args == ["a  b"]
    # A blank line ends the directives.
    df = parse("\n# escape=`\nFROM busybox\n")
    assert df.escape == "\\"
    df = parse("# syntax=docker/dockerfile:1\n#ESCAPE = `\nFROM busybox\n")
    assert df.escape == "`" and df.directives["syntax"] == "docker/dockerfile:1"


def test_bad_directives():
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM busybox\n")
    with pytest.raises(DockerfileError, match="only one escape parser directive"):
        parse("# escape=`\n# escape=\\\nFROM busybox\n")


def test_bom_is_ignored():
    assert parse("\ufeffFROM busybox\n").instructions[0].args == ["busybox"]


# -- errors name file, line and instruction ------------------------------------------

def test_unknown_instruction_names_file_line_and_word():
    text = "FROM busybox\n" + "RUN true\n" * 5 + "RUNN echo\n"
    with pytest.raises(DockerfileError) as err:
        parse(text, "Dockerfile")
    assert str(err.value).startswith("Dockerfile:7: unknown instruction: RUNN")
    assert "did you mean RUN?" in str(err.value)
    assert err.value.exit_code != 0


@pytest.mark.parametrize("text,message", [
    ("FROM", "FROM requires either one or three arguments"),
    ("FROM a b", "FROM requires either one or three arguments"),
    ("FROM a AS 1x", "invalid name for build stage"),
    ("FROM busybox\nCOPY onlyone", "COPY requires at least two arguments"),
    ("FROM busybox\nADD", "ADD requires at least two arguments"),
    ("FROM busybox\nRUN", "RUN requires at least one argument"),
    ("FROM busybox\nENV", "ENV requires at least one argument"),
    ("FROM busybox\nENV A", "ENV must have two arguments"),
    ("FROM busybox\nENV A=1 B", "can't find = in 'B'"),
    ("FROM busybox\nENV =1", "ENV names can not be blank"),
    ("FROM busybox\nLABEL", "LABEL requires at least one argument"),
    ("FROM busybox\nARG", "ARG requires at least one argument"),
    ("FROM busybox\nARG =x", "ARG names can not be blank"),
    ("FROM busybox\nWORKDIR", "WORKDIR requires exactly one argument"),
    ("FROM busybox\nUSER", "USER requires exactly one argument"),
    ("FROM busybox\nSHELL /bin/sh -c", "SHELL requires the arguments to be in JSON form"),
    ("FROM busybox\nSHELL []", "SHELL requires at least one argument"),
    ("FROM busybox\nCOPY --bogus=1 a b", "unknown flag: --bogus for COPY"),
    ("FROM busybox\nRUN --from=x true", "unknown flag: --from for RUN"),
    ("FROM busybox\nCOPY --from a b", "missing a value on flag: --from"),
    ("FROM busybox\nCOPY --link=maybe a b", "expecting boolean value"),
    ("FROM busybox\nCOPY --from=a --from=b a b", "duplicate flag"),
    ("FROM busybox\nONBUILD ONBUILD RUN x", "Chaining ONBUILD"),
    ("FROM busybox\nONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM busybox\nONBUILD RUNN x", "unknown instruction: RUNN"),
    ("FROM busybox\nHEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("FROM busybox\nHEALTHCHECK EXEC x", "Unknown type"),
    ("FROM busybox\nVOLUME [\"\"]", "VOLUME specified can not be an empty string"),
    ("# only comments\n\n", "cannot be empty"),
])
def test_syntax_errors(text, message):
    with pytest.raises(DockerfileError) as err:
        parse(text, "ctx/Dockerfile")
    assert message in str(err.value)
    assert str(err.value).startswith("ctx/Dockerfile:")


def test_error_line_is_the_instructions_first_line():
    with pytest.raises(DockerfileError, match=r"^Dockerfile:3: ENV must have two arguments"):
        parse("FROM busybox\n\nENV \\\n  A\n")


def test_parse_file_missing(tmp_path):
    with pytest.raises(MiniboxError, match="no such file"):
        parse_file(str(tmp_path / "Dockerfile"))
    (tmp_path / "Dockerfile").write_text("FROM busybox\nFOO bar\n")
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: unknown instruction: FOO"):
        parse_file(str(tmp_path / "Dockerfile"), "Dockerfile")


# -- argument forms --------------------------------------------------------------------

def test_exec_and_shell_forms():
    ins = one('CMD ["echo", "a b"]')
    assert ins.json and ins.args == ["echo", "a b"]
    ins = one("ENTRYPOINT echo hi")
    assert not ins.json and ins.args == ["echo hi"]
    # Not a valid JSON array of strings: the shell form, as docker does.
    for text in ("RUN [echo, hi]", "RUN ['echo']", 'RUN ["echo", 1]', 'RUN [ "a" ] x'):
        ins = one(text)
        assert not ins.json and ins.args == [text[4:]], text
    ins = one('RUN ["sh", "-c", "echo \\"x\\""]')
    assert ins.json and ins.args == ["sh", "-c", 'echo "x"']
    ins = one('SHELL ["/bin/bash", "-c"]')
    assert ins.json and ins.args == ["/bin/bash", "-c"]


def test_copy_forms_and_flags():
    ins = one("COPY --from=build --chown=app:app --chmod=0755 a b /dst/")
    assert ins.args == ["a", "b", "/dst/"]
    assert ins.flags == {"from": "build", "chown": "app:app", "chmod": "0755"}
    ins = one('COPY ["a b", "/dst dir/"]')
    assert ins.json and ins.args == ["a b", "/dst dir/"]
    ins = one("ADD --link --exclude=*.md --exclude=*.txt . /app")
    assert ins.flags == {"link": True, "exclude": ["*.md", "*.txt"]}
    ins = one('COPY --chown="a b" x y')
    assert ins.flags == {"chown": "a b"}
    ins = one("COPY -- --weird /dst")
    assert ins.args == ["--weird", "/dst"] and ins.flags == {}


def test_env_and_label_forms_keep_quotes_until_substitution():
    ins = one('ENV A=1 B="two words" C=three\\ words')
    assert ins.pairs() == [("A", "1"), ("B", '"two words"'), ("C", "three\\ words")]
    ins = one("ENV LEGACY the rest of the line")
    assert ins.pairs() == [("LEGACY", "the rest of the line")]
    ins = one('LABEL "com.example.vendor"="ACME Inc" version=1.0')
    assert ins.pairs() == [('"com.example.vendor"', '"ACME Inc"'), ("version", "1.0")]


def test_from_forms():
    df = parse("FROM --platform=linux/amd64 golang:1.22 as Build\nFROM scratch")
    a, b = df.instructions
    assert a.args == ["golang:1.22", "AS", "build"] and a.flags == {"platform": "linux/amd64"}
    assert b.args == ["scratch"]


def test_other_instructions():
    assert one("WORKDIR /my dir").args == ["/my dir"]
    assert one("EXPOSE 80/tcp 443").args == ["80/tcp", "443"]
    assert one("VOLUME /a /b").args == ["/a", "/b"]
    assert one('VOLUME ["/data"]').args == ["/data"]
    assert one("STOPSIGNAL SIGTERM").args == ["SIGTERM"]
    assert one("ONBUILD RUN make").args == ["RUN make"]
    ins = one('HEALTHCHECK --interval=5s CMD ["curl", "-f", "http://x"]')
    assert ins.args == ["CMD", "curl", "-f", "http://x"] and ins.json and ins.flags == {"interval": "5s"}
    assert one("HEALTHCHECK NONE").args == ["NONE"]
    assert one("ARG A B=2 C=\"x y\"").args == ["A", "B=2", 'C="x y"']


def test_text_is_canonical():
    assert one('CMD ["a", "b"]').text() == 'CMD ["a", "b"]'
    assert one("COPY --chown=1 --from=x a b").text() == "COPY --chown=1 --from=x a b"
    assert one("RUN  echo hi").text() == "RUN echo hi"


# -- substitution ------------------------------------------------------------------------

ENV = {"A": "a", "EMPTY": "", "SP": "x y", "UNSET_ARG": None}


@pytest.mark.parametrize("word,expected", [
    ("$A", "a"),
    ("${A}", "a"),
    ("pre${A}post", "preapost"),
    ("$A$A", "aa"),
    ("$NOPE", ""),
    ("${NOPE}", ""),
    ("${NOPE:-def}", "def"),
    ("${EMPTY:-def}", "def"),
    ("${EMPTY-def}", ""),
    ("${NOPE-def}", "def"),
    ("${UNSET_ARG-def}", "def"),
    ("${A:-def}", "a"),
    ("${A:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"),
    ("${NOPE:+alt}", ""),
    ("${NOPE:-$A}", "a"),
    ("${NOPE:-${A:+nested}}", "nested"),
    ("\\$A", "$A"),
    ("\\${A}", "${A}"),
    ("'$A'", "$A"),
    ('"$A"', "a"),
    ('"\\$A"', "$A"),
    ('"a\\b"', "a\\b"),
    ('"a\\"b"', 'a"b'),
    ("'a\\b'", "a\\b"),
    ("a\\ b", "a b"),
    ("$", "$"),
    ("a$", "a$"),
    ("$-x", "x"),
    ("$1x", "x"),
    ("\"two words\"", "two words"),
])
def test_expand_word(word, expected):
    assert expand_word(word, ENV) == expected


def test_expand_word_backtick_escape():
    assert expand_word("C:\\$A", ENV, "`") == "C:\\a"
    assert expand_word("`$A", ENV, "`") == "$A"


@pytest.mark.parametrize("word,message", [
    ("'open", "single-quote"),
    ('"open', "double-quote"),
    ("${A", "missing '}'"),
    ("${}", "bad substitution"),
    ("${:x}", "bad substitution"),
    ("${A:*x}", "unsupported modifier"),
    ("${NOPE:?is required}", "NOPE: is required"),
    ("${NOPE?}", "NOPE: is not allowed to be unset"),
])
def test_expand_word_errors(word, message):
    with pytest.raises(SubstitutionError, match=message):
        expand_word(word, ENV)


def test_expand_words_splits_unquoted_values():
    assert expand_words("$SP 'q r' \"$SP\" z", ENV) == ["x", "y", "q r", "x y", "z"]


# -- stages and scoping ---------------------------------------------------------------------

DF = """\
ARG BASE=busybox
ARG TAG=1.36
ARG UNUSED_IN_STAGE=global
FROM ${BASE}:${TAG} AS build
ARG TAG
ARG V=1
ENV A=x B=$A C=${V}
WORKDIR /src/$A/$TAG/$UNUSED_IN_STAGE
RUN echo $V
COPY --chown=$V:0 app /app/$B
FROM scratch AS final
COPY --from=build /app /app
FROM busybox AS unrelated
RUN true
"""


def test_plan_resolves_from_with_global_args_only():
    p = plan(parse(DF))
    assert [(s.name, s.base) for s in p.stages] == [
        ("build", "busybox:1.36"), ("final", "scratch"), ("unrelated", "busybox")]
    assert p.target == 2
    p = plan(parse(DF), {"TAG": "1.35"}, target="FINAL")
    assert p.stages[0].base == "busybox:1.35" and p.target == 1
    assert p.needed() == [0, 1]


def test_stage_vars_follow_docker_scoping():
    p = plan(parse(DF), {"V": "7"}, target="build")
    v = StageVars(p, ["PATH=/usr/bin", "A=from-image"])
    out = [v.expand(i) for i in p.stages[0].instructions]
    # A re-declared global ARG gets the global value; build-args override defaults.
    assert v.args == {"TAG": "1.36", "V": "7"}
    # Pairs of one ENV see the values from before it: B gets the image's A.
    assert out[2].pairs() == [("A", "x"), ("B", "from-image"), ("C", "7")]
    # A global ARG not re-declared is invisible inside the stage.
    assert out[3].args == ["/src/x/1.36/"]
    # RUN is left to the shell; its ARGs are its environment (and its cache key).
    assert out[4].args == ["echo $V"]
    assert v.args_in_effect() == {"TAG": "1.36", "V": "7"}
    assert out[5].args == ["app", "/app/from-image"] and out[5].flags["chown"] == "7:0"


def test_env_shadows_arg():
    p = plan(parse("FROM busybox\nARG X=arg\nENV X=env\nWORKDIR /$X\n"))
    v = StageVars(p)
    out = [v.expand(i) for i in p.stages[0].instructions]
    assert out[2].args == ["/env"]
    assert v.args_in_effect() == {}


def test_arg_default_sees_earlier_vars_and_build_arg_needs_declaration():
    p = plan(parse("FROM busybox\nENV E=e\nARG X=${E}-x\nARG Y\nUSER $X:$Y:$Z\n"),
             {"Y": "y", "Z": "z"})
    v = StageVars(p)
    out = [v.expand(i) for i in p.stages[0].instructions]
    assert out[3].args == ["e-x:y:"]
    assert p.unused_build_args() == ["Z"]


def test_bare_arg_without_value_is_unset():
    p = plan(parse("FROM busybox\nARG X\nWORKDIR /${X-unset}\n"))
    v = StageVars(p)
    out = [v.expand(i) for i in p.stages[0].instructions]
    assert out[1].args == ["/unset"] and v.args_in_effect() == {}


def test_exec_form_copy_keeps_quote_characters():
    p = plan(parse("FROM busybox\nENV A=1\nCOPY [\"it's $A\", \"/d\\\"q\"]\n"))
    v = StageVars(p)
    out = [v.expand(i) for i in p.stages[0].instructions]
    assert out[1].args == ["it's 1", '/d"q']


def test_expose_splits_expanded_values_and_label_expands_keys():
    p = plan(parse('FROM busybox\nENV P="80 443" K=key\nEXPOSE $P 8080\nLABEL $K="v $K"\n'))
    v = StageVars(p)
    out = [v.expand(i) for i in p.stages[0].instructions]
    assert out[1].args == ["80", "443", "8080"]
    assert out[2].pairs() == [("key", "v key")]


def test_from_uses_only_args_declared_before_it():
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: base name \(\$\{IMG\}\) should not be blank"):
        plan(parse("FROM busybox\nFROM ${IMG}\nARG IMG=x\n"))
    p = plan(parse("ARG IMG=img\nFROM ${IMG}\nFROM $IMG AS b\n"), {"IMG": "other"})
    assert [s.base for s in p.stages] == ["other", "other"]


def test_plan_errors():
    with pytest.raises(DockerfileError, match=r"^Dockerfile:1: RUN before the first FROM"):
        plan(parse("RUN true\nFROM busybox\n"))
    with pytest.raises(DockerfileError, match="duplicate stage name 'a'"):
        plan(parse("FROM busybox AS a\nFROM busybox AS A\n"))
    with pytest.raises(DockerfileError, match="target stage 'nope' could not be found"):
        plan(parse("FROM busybox AS a\n"), target="nope")
    with pytest.raises(DockerfileError, match="no FROM"):
        plan(parse("ARG A=1\n"))


def test_stage_as_base_and_copy_from_index():
    p = plan(parse("FROM busybox AS base\nRUN x\nFROM base\nCOPY --from=0 /a /a\n"))
    assert p.stages[1].base_stage == 0
    assert p.needed() == [0, 1]


def test_substitution_error_names_instruction():
    p = plan(parse("FROM busybox\nWORKDIR ${A:?must be set}\n"))
    v = StageVars(p)
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: WORKDIR: A: must be set"):
        v.expand(p.stages[0].instructions[0])
