"""Build stages and the variables each instruction sees (docker's ARG/ENV scoping).

Docker's rules, which this module reproduces:

* ARGs declared before the first FROM are *global*: only FROM lines can use
  them, unless a stage re-declares them with a bare ``ARG NAME``;
* ``--build-arg`` overrides an ARG's default, but only for ARGs the Dockerfile
  declares; an undeclared build-arg is reported as not consumed;
* inside a stage, words see the base image's Env, then the stage's ARGs, and
  ENV wins over an ARG of the same name;
* the builder substitutes ENV, ADD, COPY (and their --from/--chown/--chmod),
  WORKDIR, EXPOSE, LABEL, USER, VOLUME, STOPSIGNAL, ARG defaults and FROM;
  RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK and ONBUILD are left to the shell
  or to the later build that triggers them;
* RUN sees the ARGs in effect as environment variables, so their values are
  part of a RUN step's cache key.
"""

from dataclasses import dataclass, field

from minibox.build.dockerfile import Dockerfile, DockerfileError, Instruction
from minibox.build.substitute import SubstitutionError, expand_word, expand_words

# Instructions whose words the builder expands; the rest go through as written.
_EXPANDED = {"ENV", "ADD", "COPY", "WORKDIR", "EXPOSE", "LABEL", "USER", "VOLUME",
             "STOPSIGNAL", "ARG", "FROM"}
_EXPANDED_FLAGS = {"from", "chown", "chmod"}


@dataclass
class Stage:
    """One ``FROM`` and the instructions up to the next one."""

    index: int
    name: str | None
    base: str                      # the image after substitution, or a stage name, or "scratch"
    base_stage: int | None         # index of an earlier stage used as base
    from_instr: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class BuildPlan:
    """The stages of a Dockerfile, the global ARGs and the stage to build."""

    stages: list[Stage]
    meta_args: dict[str, str | None]
    build_args: dict[str, str]
    target: int

    def stage(self, ref: str) -> Stage | None:
        """The stage named ``ref`` (case-insensitive) or with index ``ref``."""
        for st in self.stages:
            if st.name is not None and st.name == ref.lower():
                return st
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None

    def needed(self) -> list[int]:
        """Stages the target depends on (as base or ``COPY --from``), in build order."""
        need: set[int] = set()
        todo = [self.target]
        while todo:
            i = todo.pop()
            if i in need:
                continue
            need.add(i)
            st = self.stages[i]
            if st.base_stage is not None:
                todo.append(st.base_stage)
            for ins in st.instructions:
                src = ins.flags.get("from") if ins.cmd == "COPY" else None
                if isinstance(src, str):
                    dep = self._stage_ref(src, before=i)
                    if dep is not None:
                        todo.append(dep)
        return sorted(need)

    def _stage_ref(self, ref: str, before: int) -> int | None:
        # ``--from`` may hold unexpanded ARGs; a reference we cannot resolve
        # here is an image, resolved by the builder.
        st = self.stage(ref)
        if st is not None and st.index < before:
            return st.index
        return None

    def unused_build_args(self) -> list[str]:
        """Build-args no ARG declares (docker warns about them)."""
        declared = set(self.meta_args)
        for st in self.stages:
            for ins in st.instructions:
                if ins.cmd == "ARG":
                    declared.update(w.split("=", 1)[0] for w in ins.args)
        return sorted(k for k in self.build_args if k not in declared)


def plan(df: Dockerfile, build_args: dict[str, str] | None = None,
         target: str | None = None) -> BuildPlan:
    """Split ``df`` into stages and resolve every FROM with the global ARGs."""
    build_args = dict(build_args or {})
    meta: dict[str, str | None] = {}
    stages: list[Stage] = []
    for ins in df.instructions:
        if ins.cmd == "FROM":
            stages.append(_new_stage(ins, len(stages), stages, meta))
        elif not stages:
            if ins.cmd != "ARG":
                raise ins.error(f"{ins.cmd} before the first FROM: only ARG may come before FROM "
                                "(no build stage in current context)")
            for word in ins.args:
                name, value = _arg_value(ins, word, meta, build_args)
                meta[name] = value
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise DockerfileError(f"{df.filename}: no build stage in context: the Dockerfile has no FROM")
    if target is None:
        index = len(stages) - 1
    else:
        found = next((s for s in stages if s.name == target.lower()), None)
        if found is None:
            raise DockerfileError(f"target stage {target!r} could not be found")
        index = found.index
    return BuildPlan(stages, meta, build_args, index)


def _new_stage(ins: Instruction, index: int, stages: list[Stage],
               meta: dict[str, str | None]) -> Stage:
    try:
        base = expand_word(ins.args[0], meta, ins.escape)
    except SubstitutionError as e:
        raise ins.error(f"FROM: {e}") from None
    if not base:
        raise ins.error(f"base name ({ins.args[0]}) should not be blank")
    name = ins.args[2] if len(ins.args) == 3 else None
    if name is not None and any(s.name == name for s in stages):
        raise ins.error(f"duplicate stage name {name!r}")
    base_stage = next((s.index for s in stages if s.name == base.lower()), None)
    platform = ins.flags.get("platform")
    flags = dict(ins.flags)
    if isinstance(platform, str):
        flags["platform"] = expand_word(platform, meta, ins.escape)
    from_instr = ins.with_args([base] + ins.args[1:], flags)
    return Stage(index, name, base, base_stage, from_instr)


def _arg_value(ins: Instruction, word: str, env: dict, build_args: dict[str, str]):
    name, has_default, default = word.partition("=")
    if name in build_args:
        return name, build_args[name]
    if not has_default:
        return name, None
    try:
        return name, expand_word(default, env, ins.escape)
    except SubstitutionError as e:
        raise ins.error(f"ARG: {e}") from None


class StageVars:
    """The variables visible inside one stage, updated instruction by instruction.

    ``image_env`` is the base image's ``Env`` (``K=V`` strings): docker lets
    ``WORKDIR $GOPATH`` use the base image's variables.
    """

    def __init__(self, plan_: BuildPlan, image_env: list[str] | None = None):
        self.plan = plan_
        self.env: dict[str, str] = {}
        for item in image_env or []:
            k, _, v = item.partition("=")
            self.env[k] = v
        self.args: dict[str, str | None] = {}

    def lookup(self) -> dict[str, str | None]:
        """Name → value for substitution: ARGs, overridden by ENV."""
        merged: dict[str, str | None] = dict(self.args)
        merged.update(self.env)
        return merged

    def args_in_effect(self) -> dict[str, str]:
        """Declared ARGs with a value that no ENV shadows: RUN's extra environment."""
        return {k: v for k, v in sorted(self.args.items()) if v is not None and k not in self.env}

    def expand(self, ins: Instruction) -> Instruction:
        """``ins`` with variables substituted where docker does; ENV/ARG update the state.

        Raises :class:`DockerfileError` naming the instruction on a bad word.
        """
        if ins.cmd not in _EXPANDED:
            return ins
        try:
            return self._expand(ins)
        except SubstitutionError as e:
            raise ins.error(f"{ins.cmd}: {e}") from None

    def _expand(self, ins: Instruction) -> Instruction:
        env = self.lookup()
        esc = ins.escape
        flags = {k: (expand_word(v, env, esc) if k in _EXPANDED_FLAGS and isinstance(v, str) else v)
                 for k, v in ins.flags.items()}
        if ins.cmd == "ARG":
            for word in ins.args:
                name, has_default, _ = word.partition("=")
                if not has_default and name not in self.plan.build_args and name in self.plan.meta_args:
                    # A bare ARG re-declares a global ARG inside the stage.
                    self.args[name] = self.plan.meta_args[name]
                else:
                    self.args[name] = _arg_value(ins, word, self.lookup(), self.plan.build_args)[1]
            return ins.with_args(ins.args, flags)
        if ins.cmd in ("ENV", "LABEL"):
            # Every pair sees the variables as they were before this instruction.
            args = []
            for key, value in ins.pairs():
                args += [expand_word(key, env, esc), expand_word(value, env, esc)]
            out = ins.with_args(args, flags)
            if ins.cmd == "ENV":
                for key, value in out.pairs():
                    self.env[key] = value
            return out
        if ins.cmd in ("WORKDIR", "USER", "STOPSIGNAL"):
            return ins.with_args([expand_word(ins.args[0], env, esc)], flags)
        if ins.cmd == "EXPOSE":
            return ins.with_args([w for a in ins.args for w in expand_words(a, env, esc)], flags)
        if ins.json:
            # Exec-form words are JSON strings: variables are expanded, quotes are data.
            return ins.with_args([expand_word(_quote_free(a, esc), env, esc) for a in ins.args], flags)
        return ins.with_args([expand_word(a, env, esc) for a in ins.args], flags)


def _quote_free(word: str, esc: str) -> str:
    """Wrap a JSON string in double quotes so that only ``$`` stays special in it."""
    return '"' + word.replace(esc, esc + esc).replace('"', esc + '"') + '"'
