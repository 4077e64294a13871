"""Compile minibox's two C helper executables into ``minibox/libexec/``.

``minibox-monitor`` (csrc/monitor.c) watches one detached container;
``minibox-init`` (csrc/init.c) is the ``--init`` PID 1. They are programs,
not Python extensions, so cffi cannot build them; setup.py's build_ext step
calls :func:`build` after the shim, with the very compiler object setuptools
configured (CC, CFLAGS, LDFLAGS honoured), so ``pip install .`` needs no
manual step.

For development, compile them in place (next to this package's sources):

    python3 -m minibox._build_libexec          # from the project root

This file is loaded by path from setup.py (the package itself is not
importable at build time), so it imports nothing from minibox.
"""

import os
import shutil
import stat
import sys
import tempfile

CFLAGS = ["-O2", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections"]
LDFLAGS = ["-Wl,--gc-sections", "-s"]

# (executable name, source relative to the project root, static linking)
# "require": the init is bind-mounted into arbitrary images, which may have
# no libc at all. "prefer": static keeps the monitor's RSS smallest, but a
# dynamic monitor still works where no libc.a is installed.
HELPERS = (
    ("minibox-monitor", os.path.join("csrc", "monitor.c"), "prefer"),
    ("minibox-init", os.path.join("csrc", "init.c"), "require"),
)


def _new_compiler(verbose: bool = False):
    # setuptools first: it makes ``distutils`` its own copy (the stdlib's is gone in 3.12).
    import setuptools  # noqa: F401, I001
    from distutils.ccompiler import new_compiler
    from distutils.sysconfig import customize_compiler

    compiler = new_compiler(verbose=verbose)
    customize_compiler(compiler)
    return compiler


def build(project_root: str, out_dir: str, compiler=None, build_temp: str | None = None,
          verbose: bool = False) -> list[str]:
    """Compile every helper into ``out_dir``; return the paths written.

    ``compiler`` is a distutils CCompiler (build_ext's ``self.compiler``);
    a fresh, customized one is made when it is None. Raises the compiler's
    CompileError/LinkError when a helper cannot be built: a package without
    its monitor could not run a detached container.
    """
    from setuptools.errors import LinkError

    if compiler is None or isinstance(compiler, str):
        compiler = _new_compiler(verbose)
    os.makedirs(out_dir, exist_ok=True)
    own_temp = build_temp is None
    if own_temp:
        build_temp = tempfile.mkdtemp(prefix="minibox-libexec-")
    written = []
    try:
        for name, source, static in HELPERS:
            src = os.path.join(project_root, source)
            # Relative when possible: distutils mirrors the source path under build_temp.
            rel = os.path.relpath(src)
            if not rel.startswith(os.pardir):
                src = rel
            objects = compiler.compile([src], output_dir=os.path.join(build_temp, name),
                                       extra_postargs=CFLAGS)
            try:
                compiler.link_executable(objects, name, output_dir=out_dir,
                                         extra_postargs=LDFLAGS + ["-static"])
            except LinkError:
                if static == "require":
                    raise
                print(f"minibox: static link of {name} failed (no libc.a?); linking it "
                      "dynamically", file=sys.stderr)
                compiler.link_executable(objects, name, output_dir=out_dir,
                                         extra_postargs=LDFLAGS)
            path = os.path.join(out_dir, name)
            mode = os.stat(path).st_mode
            os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            written.append(path)
    finally:
        if own_temp:
            shutil.rmtree(build_temp, ignore_errors=True)
    return written


def main() -> int:
    """Build in place: ``python3 -m minibox._build_libexec`` from the project root."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    project_root = os.path.dirname(package_dir)
    for path in build(project_root, os.path.join(package_dir, "libexec"), verbose=True):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
