"""Write the ``minibox`` command: pip's console script with a faster, stricter first line.

pip's script starts Python with site processing: every ``.pth`` file of the
venv is read and run (setuptools' ``_distutils_hack`` among them), about
5 ms of every ``minibox run``. The launcher starts ``python -IS`` and puts
the venv's site-packages on ``sys.path`` itself:

- ``-I`` (isolated): ``PYTHON*`` variables, the user's site directory and
  the current directory are ignored; a tool run as root should import only
  what was installed with it;
- ``-S``: no site processing.

``make install`` runs ``python -m minibox.launcher PATH`` after pip.
"""

import sys
import sysconfig

from minibox.atomic import write_bytes

TEMPLATE = """#!{python} -IS
# minibox's launcher, written by `python -m minibox.launcher` (see there).
import sys
sys.path[:0] = {paths!r}
from minibox.cli import run
run()
"""


def launcher_text(python: str) -> str:
    paths = sysconfig.get_paths()
    return TEMPLATE.format(python=python, paths=list(dict.fromkeys([paths["purelib"], paths["platlib"]])))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m minibox.launcher PATH", file=sys.stderr)
        return 2
    write_bytes(argv[1], launcher_text(sys.executable).encode(), 0o755)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
