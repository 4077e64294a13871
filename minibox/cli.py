"""The docker-compatible command line: parse, call one engine function, print, exit.

Each verb lives in ``minibox/commands/<verb>.py`` with ``configure(parser)``
and ``main(args) -> int``; only the module of the verb being run is imported,
because every import is paid on the start-up path. Errors are printed once,
here, as ``minibox: <message>``, with docker's exit codes.
"""

import argparse
import importlib
import os
import sys

from minibox.errors import MiniboxError, UsageError

# Verbs whose module name differs from the verb (Python keywords, aliases).
_MODULE_ALIASES = {"import": "import_"}
_VERBS = (
    "run", "create", "start", "ps", "rm", "inspect", "images", "import", "info",
    "version", "pull", "load", "save", "tag", "rmi", "history", "diff", "commit",
    "system", "image", "network", "volume", "stats", "update", "check", "logs", "exec", "stop",
    "kill", "restart", "wait", "pause", "unpause", "attach", "build", "builder", "port",
    "login", "logout", "top", "runtime",
    "_finish",  # internal: what a container's monitor runs once the container exited
)

DEFAULT_ROOT = "/var/lib/minibox"


def _formatter(prog: str) -> argparse.HelpFormatter:
    # An explicit width keeps argparse from importing shutil to ask the
    # terminal (~7 ms on every command: add_argument builds a formatter).
    return argparse.HelpFormatter(prog, width=int(os.environ.get("COLUMNS", "100")))


class Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as docker does: one line, exit 125."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message}\nSee '{self.prog} --help'.")


def available_verbs() -> list[str]:
    """Verbs whose module is present (helps list only what this build has)."""
    here = os.path.join(os.path.dirname(__file__), "commands")
    present = {name[:-3] for name in os.listdir(here) if name.endswith(".py")}
    return [v for v in _VERBS if _MODULE_ALIASES.get(v, v) in present]


def _usage() -> str:
    verbs = ", ".join(v for v in available_verbs() if not v.startswith("_"))
    return (
        "usage: minibox [--root DIR] [--debug] COMMAND [ARGS...]\n\n"
        "A small docker-compatible container runtime.\n\n"
        f"Commands: {verbs}\n\n"
        "Run 'minibox COMMAND --help' for more information on a command."
    )


def _split_globals(argv: list[str]):
    """Take the global options that stand before the verb (docker's layout)."""
    opts = {"root": os.environ.get("MINIBOX_ROOT") or DEFAULT_ROOT, "debug": False}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return opts, None, []
        if arg in ("-v", "--version"):
            return opts, "version", []
        if arg in ("-D", "--debug"):
            opts["debug"] = True
        elif arg == "--root":
            if i + 1 >= len(argv):
                raise UsageError("flag needs an argument: --root")
            opts["root"] = argv[i + 1]
            i += 1
        elif arg.startswith("--root="):
            opts["root"] = arg.split("=", 1)[1]
        else:
            raise UsageError(f"unknown flag: {arg}\nSee 'minibox --help'.")
        i += 1
    if i >= len(argv):
        return opts, None, []
    return opts, argv[i], argv[i + 1 :]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``minibox`` command; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    debug = False
    try:
        opts, verb, rest = _split_globals(argv)
        debug = opts["debug"]
        if verb is None:
            print(_usage())
            return 0
        if verb not in _VERBS:
            raise UsageError(f"'{verb}' is not a minibox command.\nSee 'minibox --help'.")
        try:
            module = importlib.import_module(f"minibox.commands.{_MODULE_ALIASES.get(verb, verb)}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("minibox.commands"):
                raise MiniboxError(f"'{verb}' is not available in this build of minibox") from None
            raise
        parser = Parser(prog=f"minibox {verb}", description=(module.__doc__ or "").strip().split("\n")[0],
                        add_help=getattr(module, "ADD_HELP", True))
        module.configure(parser)
        args = parser.parse_args(rest)
        args.root = os.path.abspath(opts["root"])
        args.debug = debug
        return module.main(args) or 0
    except MiniboxError as exc:
        print(f"minibox: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if debug:
            raise
        print(f"minibox: {exc}", file=sys.stderr)
        return 125
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user, the trace with --debug
        if debug:
            raise
        print(f"minibox: internal error: {exc.__class__.__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 125


def run() -> None:
    """The ``minibox`` command: ``main()``, then exit without the interpreter's teardown.

    Tearing down a Python that has loaded minibox's modules costs about 9 ms
    (every module, dict and object freed one by one), a tenth of a
    container's start; the kernel takes the whole process back at once.
    Everything minibox writes is closed by a with-block or written
    atomically before ``main()`` returns, so only the standard streams are
    left to flush.
    """
    try:
        code = main()
    except SystemExit as exc:  # argparse's --help and usage paths
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe (minibox ps | head -1): nothing more to say
    os._exit(code)
