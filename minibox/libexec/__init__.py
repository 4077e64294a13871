"""The C helper executables shipped inside the package.

``minibox-monitor`` (watches a detached container: logs, reaping, exit file;
protocol at the top of csrc/monitor.c) and ``minibox-init`` (the static
``--init`` PID 1, csrc/init.c) are compiled by ``pip install .`` into this
directory, or in place for development with ``python3 -m minibox._build_libexec``.
"""

import os

from minibox.errors import MiniboxError

MONITOR = "minibox-monitor"
INIT = "minibox-init"

_DIR = os.path.dirname(os.path.abspath(__file__))


def path(name: str) -> str:
    """Absolute path of the built helper ``name`` (MONITOR or INIT).

    Raises MiniboxError when it is missing or not executable, which means
    the package was installed without its build step (or a source tree was
    never built in place).
    """
    if name not in (MONITOR, INIT):
        raise MiniboxError(f"unknown minibox helper: {name}")
    full = os.path.join(_DIR, name)
    if not os.access(full, os.X_OK):
        raise MiniboxError(
            f"helper {full} is missing or not executable: reinstall minibox with "
            "`pip install .`, or build it in place with `python3 -m minibox._build_libexec`"
        )
    return full
