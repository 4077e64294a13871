"""setuptools needs this file only for ``cffi_modules``, which pyproject.toml cannot express."""

from setuptools import setup

setup(cffi_modules=["minibox/_build_shim.py:ffibuilder"])
