"""setuptools needs this file for ``cffi_modules``, which pyproject.toml cannot
express, and for the build step that compiles minibox's C helper executables
(minibox/libexec/minibox-monitor and minibox-init, see minibox/_build_libexec.py)."""

import importlib.util
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext

_HERE = os.path.dirname(os.path.abspath(__file__))


def _libexec_builder():
    # By path: the minibox package is not importable while it is being built.
    spec = importlib.util.spec_from_file_location(
        "_minibox_build_libexec", os.path.join(_HERE, "minibox", "_build_libexec.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class build_ext_with_helpers(build_ext):
    """build_ext (the cffi shim) followed by the two helper executables."""

    def run(self):
        super().run()
        builder = _libexec_builder()
        if self.inplace:
            out_dir = os.path.join(_HERE, "minibox", "libexec")
        else:
            out_dir = os.path.join(self.build_lib, "minibox", "libexec")
        compiler = None if isinstance(self.compiler, (str, type(None))) else self.compiler
        self._helpers = builder.build(_HERE, out_dir, compiler=compiler,
                                      build_temp=self.build_temp, verbose=bool(self.verbose))

    def get_outputs(self):
        return super().get_outputs() + list(getattr(self, "_helpers", []))


setup(
    cffi_modules=[
        "minibox/_build_shim.py:ffibuilder",
        "minibox/_build_caps.py:ffibuilder",
        "minibox/_build_seccomp.py:ffibuilder",
    ],
    cmdclass={"build_ext": build_ext_with_helpers},
)
