"""``minibox build``: run a Dockerfile's steps, one layer per filesystem change, with a cache.

For each stage the target needs, in order: start from the base image (or an
earlier stage, or ``scratch``), then for each instruction

* substitute variables (:mod:`minibox.build.stages`);
* metadata instructions (ENV, CMD, LABEL, USER ...) only change the config;
* RUN, COPY, ADD and WORKDIR are *steps*: their cache key chains from the
  previous key (:mod:`minibox.build.cache`); on a hit the stored layer is
  reused and the step prints ``CACHED``; on a miss the step runs in a
  :class:`~minibox.build.workspace.Workspace` (the layers so far mounted
  under a fresh upper dir) and the upper dir becomes the step's layer.

The final image is written to the image store only when every step
succeeded, so a failing build tags nothing; every workspace is unmounted and
removed whatever happens.
"""

import json
import os
import posixpath
import signal
import time
from dataclasses import dataclass, field

from minibox.build import cache as cachemod
from minibox.build import imageconfig
from minibox.build.dockerfile import Dockerfile, Instruction, parse, parse_file
from minibox.build.progress import Progress, Vertex
from minibox.build.stages import BuildPlan, Stage, StageVars, plan
from minibox.errors import MiniboxError, NotFound

BUILD_FAILED = 1  # docker build's exit code when a step fails
_STEP_CMDS = ("RUN", "COPY", "ADD", "WORKDIR")
_COMMENT = "buildkit.dockerfile.v0"


class BuildError(MiniboxError):
    """A step failed; the message names the Dockerfile line and the step."""

    exit_code = BUILD_FAILED


@dataclass
class BuildOptions:
    context: str
    dockerfile: str | None = None       # path, "-" for stdin; default <context>/Dockerfile
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    trace: object = None                # build --trace: a callable taking one line, else None


@dataclass
class StageResult:
    """What a finished stage leaves for later stages and the export."""

    config: dict                # the whole image config (config, rootfs, history ...)
    layers: list[dict]          # store layer records (diff_id [, blob, media_type]), bottom first
    key: str                    # cache key of its last step
    created: str = "1970-01-01T00:00:00Z"   # time of its last step (RFC 3339)


class Builder:
    """One build; :meth:`run` returns the image."""

    def __init__(self, root: str, opts: BuildOptions, progress: Progress | None = None):
        from minibox.image.store import ImageStore

        self.root = os.path.abspath(root)
        self.opts = opts
        self.progress = progress or Progress()
        self.store = ImageStore(self.root)
        self.cache = cachemod.CacheIndex(self.root)
        self.context = None
        self.results: dict[int, StageResult] = {}
        self.used_keys: list[str] = []
        self.stats = {"steps": 0, "cached": 0}

    # ------------------------------------------------------------------ top level

    def run(self):
        """Build and tag; return the image (:class:`minibox.image.store.Image`)."""
        from minibox.build import workspace
        from minibox.image import reference

        tags = [reference.parse(t) for t in self.opts.tags]  # bad -t fails before any work
        df, df_name = self._load_dockerfile()
        build_plan = plan(df, self.opts.build_args, self.opts.target)
        self._load_ignore(df_name)
        self.store.ensure()
        workspace.reap_stale(self.root)
        # One read of the index per build; entries written meanwhile by another
        # build are only missed hits, never wrong ones.
        self._cached = {} if self.opts.no_cache else self.cache.load()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            for index in build_plan.needed():
                self.results[index] = self._build_stage(build_plan, build_plan.stages[index])
        finally:
            signal.signal(signal.SIGTERM, previous)
        unused = build_plan.unused_build_args()
        if unused:
            self.progress.write(f"[Warning] One or more build-args {unused} were not consumed")
        image = self._export(self.results[build_plan.target], tags)
        self.cache.touch(self.used_keys)
        self._save_memo()
        return image

    def _load_dockerfile(self) -> tuple[Dockerfile, str]:
        import sys

        path = self.opts.dockerfile
        v = self.progress.vertex(f"[internal] load build definition from {os.path.basename(path or 'Dockerfile')}")
        if path == "-":
            text = sys.stdin.read()
            df, name = parse(text, "Dockerfile"), None
        else:
            if path is None:
                path = os.path.join(self.opts.context, "Dockerfile")
            df, name = parse_file(path, os.path.basename(path)), path
            text = ""
        v.log(f"transferring dockerfile: {_size(os.path.getsize(path) if name else len(text))} done")
        v.done()
        return df, name

    def _load_ignore(self, dockerfile: str | None) -> None:
        from minibox.build.ignore import load

        v = self.progress.vertex("[internal] load .dockerignore")
        self.matcher = load(self.opts.context, dockerfile)
        ignore = os.path.join(self.opts.context, ".dockerignore")
        size = os.path.getsize(ignore) if os.path.isfile(ignore) else 2
        v.log(f"transferring context: {_size(size)} done")
        v.done()

    def _context(self):
        """The scanned context, on first use (a build without COPY never walks it)."""
        if self.context is None:
            from minibox.build.context import scan

            v = self.progress.vertex("[internal] load build context")
            started = time.monotonic()
            self.context = scan(self.opts.context, self.matcher, self._load_memo())
            v.log(f"{self.context.transfer_message()} {time.monotonic() - started:.1f}s done")
            v.done()
        return self.context

    # ------------------------------------------------------------------ stages

    def _build_stage(self, build_plan: BuildPlan, stage: Stage) -> StageResult:
        instructions = list(stage.instructions)
        steps = 1 + sum(1 for i in instructions if i.cmd in _STEP_CMDS)
        label = f"{stage.name or f'stage-{stage.index}'} " if len(build_plan.stages) > 1 else ""
        v = self.progress.vertex(f"[{label}1/{steps}] FROM {stage.base}")
        result = self._base(stage)
        triggers = (result.config.get("config") or {}).get("OnBuild") or []
        if stage.base_stage is None and triggers:
            instructions = self._onbuild(stage, triggers) + instructions
            steps += sum(1 for i in instructions[: len(triggers)] if i.cmd in _STEP_CMDS)
            result.config["config"]["OnBuild"] = None
        # The base is already local (minibox does not pull), as BuildKit shows a present base.
        v.cached()
        cfg = result.config
        inner = cfg["config"]
        vars_ = StageVars(build_plan, inner.get("Env") or [])
        state: dict = {}
        key, layers = result.key, list(result.layers)
        # Metadata entries take the time of the step before them, so a fully
        # cached rebuild writes the same config, hence the same image id.
        last_created = result.created
        n = 1
        for raw in instructions:
            ins = vars_.expand(raw)
            if ins.cmd not in _STEP_CMDS:
                if ins.cmd != "ARG":
                    imageconfig.apply(inner, ins, state)
                    _history(cfg, ins.text(), last_created, empty=True)
                key = cachemod.step_key(key, ins.text())
                continue
            n += 1
            name = f"[{label}{n}/{steps}] {_shown(raw)}"
            key, layer, created = self._step(build_plan, stage, ins, name, key, layers, cfg, vars_)
            if layer is not None:
                layers.append(layer)
            if ins.cmd == "WORKDIR":
                imageconfig.apply(inner, ins, state)
            last_created = _rfc3339(created)
            _history(cfg, _created_by(ins, cfg, vars_), last_created, empty=layer is None)
        if state.get("author"):
            cfg["author"] = state["author"]
        cfg["rootfs"] = {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]}
        return StageResult(cfg, layers, key, last_created)

    def _base(self, stage: Stage) -> StageResult:
        import copy

        if stage.base_stage is not None:
            prev = self.results[stage.base_stage]
            return StageResult(copy.deepcopy(prev.config), list(prev.layers), prev.key, prev.created)
        if stage.base.lower() == "scratch":
            from minibox.image import platform

            plat = platform.host()
            cfg = imageconfig.initial_config({"architecture": plat["architecture"], "os": plat["os"]})
            return StageResult(cfg, [], cachemod.base_key(None))
        try:
            img = self.store.resolve(stage.base)
        except NotFound as e:
            raise BuildError(f"{stage.from_instr.filename}:{stage.from_instr.line}: FROM {stage.base}: "
                             f"{e} (minibox build does not pull: pull or load it first)") from None
        cfg = imageconfig.initial_config(img.config)
        created = cfg.pop("created", None) or "1970-01-01T00:00:00Z"
        meta_layers = {l["diff_id"]: l for l in img.meta.get("layers", []) if "diff_id" in l}
        layers = [dict(meta_layers.get(d, {"diff_id": d})) for d in img.diff_ids]
        return StageResult(cfg, layers, cachemod.base_key(img.id), created)

    def _onbuild(self, stage: Stage, triggers: list[str]) -> list[Instruction]:
        df = parse("\n".join(triggers), f"{stage.base} ONBUILD")
        return df.instructions

    # ------------------------------------------------------------------ steps

    def _step(self, build_plan, stage, ins: Instruction, name: str, parent: str, layers: list[dict],
              cfg: dict, vars_: StageVars):
        """Run or reuse one step; return (key, layer record or None, created time)."""
        self.stats["steps"] += 1
        inner = cfg["config"]
        sources = source_layers = None
        if ins.cmd in ("COPY", "ADD"):
            sources, source_layers = self._sources_digest(build_plan, stage, ins)
        args = vars_.args_in_effect() if ins.cmd == "RUN" else None
        key = cachemod.step_key(parent, ins.text() + _run_context(ins, inner), args, sources)
        entry = None if self.opts.no_cache else self._cached.get(key)
        if entry is not None and (entry["layer"] is None or self.store.has_layer(entry["layer"])):
            v = self.progress.vertex(name)
            v.cached()
            self.stats["cached"] += 1
            self.used_keys.append(key)
            layer = {"diff_id": entry["layer"]} if entry["layer"] else None
            return key, layer, entry["created"]
        v = self.progress.vertex(name)
        try:
            info = self._execute(ins, layers, inner, vars_, v, source_layers)
        except BuildError as e:
            v.error(str(e))
            raise BuildError(f"{ins.filename}:{ins.line}: {name}: {e}") from None
        except MiniboxError as e:
            v.error(str(e))
            raise BuildError(f"{ins.filename}:{ins.line}: {name}: {e}") from None
        v.done()
        diff_id = info["diff_id"] if info else None
        entry = self.cache.put(key, diff_id, created_by=ins.text(), size=(info or {}).get("size", 0),
                               parent=parent)
        self.used_keys.append(key)
        return key, ({"diff_id": diff_id} if diff_id else None), entry["created"]

    def _execute(self, ins: Instruction, layers, inner: dict, vars_, v: Vertex, source_layers):
        from minibox.build.workspace import Workspace

        diff_ids = [l["diff_id"] for l in layers]
        with Workspace(self.root, self.store, diff_ids) as ws:
            skip: set[str] = set()
            always: set[str] = set()
            if ins.cmd == "RUN":
                skip = self._run(ws, ins, inner, vars_, v)
                always = set(runstep_host_files())
            elif ins.cmd == "WORKDIR":
                from minibox.build.copy import mkdirs

                mkdirs(ws.rootfs, imageconfig.resolve_workdir(inner, ins.args[0]), None)
            else:
                self._copy(ws, ins, inner, source_layers)
            return ws.commit(skip, always)

    def _run(self, ws, ins: Instruction, inner: dict, vars_, v: Vertex) -> set[str]:
        from minibox.build import runstep

        if ins.flags:
            raise BuildError(f"RUN --{next(iter(ins.flags))} is not supported by minibox build")
        argv = imageconfig.command(inner, ins)
        env = list(inner.get("Env") or [])
        env += [f"{k}={val}" for k, val in vars_.args_in_effect().items()]
        skip = runstep.missing_mount_points(ws.rootfs)
        code = runstep.run(ws.rootfs, ws.path("bundle"), argv, env, inner.get("WorkingDir") or "/",
                           inner.get("User") or "", lambda t, line: v.log(_text(line), t),
                           trace=self.opts.trace)
        if code != 0:
            shown = json.dumps(argv) if ins.json else " ".join(argv)
            raise BuildError(f'process "{shown}" did not complete successfully: exit code: {code}')
        return skip

    # ------------------------------------------------------------------ COPY / ADD

    def _sources_digest(self, build_plan, stage, ins: Instruction):
        """(digest of what the sources select, layers of the --from source or None)."""
        src = ins.flags.get("from")
        if not isinstance(src, str):
            if ins.cmd == "ADD":
                for s in ins.args[:-1]:
                    if "://" in s or s.startswith("git@"):
                        raise BuildError(f"{ins.filename}:{ins.line}: ADD {s}: remote sources are not "
                                         "supported by minibox build")
            try:
                return self._context().sources_digest(ins.args[:-1], ins.cmd), None
            except MiniboxError as e:
                raise BuildError(f"{ins.filename}:{ins.line}: {ins.cmd} {' '.join(ins.args)}: {e}") from None
        dep = build_plan.stage(src)
        if dep is not None and dep.index < stage.index:
            res = self.results[dep.index]
            return f"stage:{res.key}", res.layers
        try:
            img = self.store.resolve(src)
        except MiniboxError as e:
            raise BuildError(f"{ins.filename}:{ins.line}: {ins.cmd} --from={src}: {e}") from None
        return f"image:{img.id}", [{"diff_id": d} for d in img.diff_ids]

    def _copy(self, ws, ins: Instruction, inner: dict, source_layers) -> None:
        from minibox.build import copy as copymod

        unsupported = sorted(set(ins.flags) & {"parents", "exclude", "checksum", "keep-git-dir"})
        if unsupported:
            raise BuildError(f"{ins.cmd} --{unsupported[0]} is not supported by minibox build")
        owner = copymod.resolve_owner(ins.flags.get("chown"), ws.rootfs)
        chmod = copymod.parse_chmod(ins.flags.get("chmod"))
        dest = copymod.destination(ins.args[-1], inner.get("WorkingDir") or "/")
        if source_layers is None:
            sources = self._context_items(ins)
            keep_owner = False
        else:
            src_root = ws.mount_source([l["diff_id"] for l in source_layers])
            sources = [_rootfs_items(src_root, p) for s in ins.args[:-1] for p in _glob_rootfs(src_root, s)]
            if not sources:
                raise BuildError(f"{' '.join(ins.args[:-1])}: not found in the source stage")
            keep_owner = True
        copymod.copy_sources(ws.rootfs, sources, dest, owner=owner, keep_owner=keep_owner,
                             chmod=chmod, extract=ins.cmd == "ADD")

    def _context_items(self, ins: Instruction):
        """For each matched source, its items: the source itself first, then what is under it.

        Only context entries are listed, so .dockerignore'd files are never copied.
        """
        from minibox.build.copy import Item

        ctx = self._context()
        out = []
        for source in ins.args[:-1]:
            for found in ctx.resolve(source, ins.cmd):
                real = ctx.follow(found, ins.cmd)
                # The source keeps the name it was given (a followed symlink too).
                top_host = ctx.root if real == "." else os.path.join(ctx.root, real)
                items = [Item(posixpath.basename(found) if real != "." else "", top_host, os.lstat(top_host))]
                below = ctx.walk(real) if real == "." else ctx.walk(real)[1:]
                cut = 0 if real == "." else len(real) + 1
                for entry in below:
                    host = os.path.join(ctx.root, entry.path)
                    items.append(Item(entry.path[cut:], host, os.lstat(host)))
                out.append(items)
        return out

    # ------------------------------------------------------------------ export

    def _export(self, result: StageResult, tags):
        v = self.progress.vertex("exporting to image")
        cfg = result.config
        history = cfg.get("history") or []
        cfg["created"] = history[-1]["created"] if history else _rfc3339(time.time())
        raw = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
        v.log("exporting layers done")
        image = self.store.add_image(raw, result.layers, tags=tags)
        v.log(f"writing image {image.id} done")
        for t in tags:
            v.log(f"naming to {t.familiar() if hasattr(t, 'familiar') else t} done")
        v.done()
        return image

    # ------------------------------------------------------------------ memo

    def _memo_path(self) -> str:
        return os.path.join(self.root, "build", "filehash.json")

    def _load_memo(self) -> dict:
        from minibox.image.fsutil import read_json

        data = read_json(self._memo_path(), {}) or {}
        return data if isinstance(data, dict) else {}

    def _save_memo(self) -> None:
        if self.context is None or not self.context.files_hashed:
            return
        from minibox.atomic import write_json

        os.makedirs(os.path.dirname(self._memo_path()), mode=0o700, exist_ok=True)
        live = {f"{e.path}\0" + ":".join(map(str, e.stat_key)) for e in self.context.entries.values()}
        write_json(self._memo_path(), {k: v for k, v in self.context.memo.items() if k in live})


# ---------------------------------------------------------------------- helpers


def runstep_host_files() -> tuple[str, ...]:
    from minibox.build.runstep import HOST_FILES

    return HOST_FILES


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _size(n: int) -> str:
    from minibox.build.context import human_size

    return human_size(n)


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r")


def _shown(ins: Instruction) -> str:
    """The instruction as written, on one line (BuildKit shows the source text)."""
    return " ".join(ins.original.split()) if len(ins.original) < 200 else ins.original[:197] + "..."


def _run_context(ins: Instruction, inner: dict) -> str:
    """What else a RUN's result depends on: the shell of a shell form, env, user, workdir."""
    if ins.cmd != "RUN":
        if ins.cmd in ("COPY", "ADD"):
            return "\0" + (inner.get("WorkingDir") or "/")
        return ""
    doc = [imageconfig.command(inner, ins), inner.get("Env") or [], inner.get("User") or "",
           inner.get("WorkingDir") or "/"]
    return "\0" + json.dumps(doc)


def _created_by(ins: Instruction, cfg: dict, vars_: StageVars) -> str:
    if ins.cmd == "RUN":
        argv = imageconfig.command(cfg["config"], ins)
        args = vars_.args_in_effect()
        prefix = f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in args.items()) + " " if args else ""
        return f"RUN {prefix}{json.dumps(argv) if ins.json else ' '.join(argv)} # buildkit"
    return f"{ins.text()} # buildkit"


def _history(cfg: dict, created_by: str, created: str, empty: bool) -> None:
    entry = {"created": created, "created_by": created_by, "comment": _COMMENT}
    if empty:
        entry["empty_layer"] = True
    cfg.setdefault("history", []).append(entry)


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


def _glob_rootfs(root: str, source: str) -> list[str]:
    """Container paths a COPY --from source names in another stage's filesystem."""
    from minibox.build.context import _has_magic, glob_regex
    from minibox.build.ignore import clean
    from minibox.runtime.paths import secure_join

    path = clean("/" + source)
    if not _has_magic(path):
        return [path] if os.path.lexists(secure_join(root, path)) else []
    found = ["/"]
    for part in [p for p in path.split("/") if p]:
        nxt = []
        for base in found:
            if not _has_magic(part):
                cand = posixpath.join(base, part)
                if os.path.lexists(secure_join(root, cand)):
                    nxt.append(cand)
                continue
            regex = glob_regex(part)
            try:
                names = sorted(os.listdir(secure_join(root, base)))
            except OSError:
                continue
            nxt += [posixpath.join(base, n) for n in names if regex.match(n)]
        found = nxt
    return found


def _rootfs_items(root: str, path: str):
    """Items of ``path`` (symlinks resolved inside ``root`` at the top) and everything below."""
    from minibox.build.copy import Item
    from minibox.runtime.paths import secure_join

    host = secure_join(root, path)
    st = os.lstat(host)
    items = [Item(posixpath.basename(path) or "", host, st)]
    if not os.path.isdir(host) or os.path.islink(host):
        return items
    stack = [("", host)]
    while stack:
        rel, full = stack.pop()
        for entry in sorted(os.scandir(full), key=lambda e: e.name):
            r = f"{rel}/{entry.name}" if rel else entry.name
            est = entry.stat(follow_symlinks=False)
            items.append(Item(r, entry.path, est))
            if entry.is_dir(follow_symlinks=False):
                stack.append((r, entry.path))
    return items
