"""Load only pyroute2's rtnetlink client, not the whole library.

``import pyroute2.iproute.linux`` first runs ``pyroute2/__init__.py``, which
imports every module pyroute2 has (IPDB, NDB, nftables, wireguard, plan9 ...)
and roughly doubles the cost of the import on this start-up path. When
nothing has imported pyroute2 yet, a bare package module standing for it is
registered so the submodule loads alone. The stand-in keeps the real
package's behaviour for later users: the first attribute it lacks
(``pyroute2.IPRoute`` ...) runs the real ``__init__`` in its namespace.
"""

import importlib.util
import sys
import threading
import types

_lock = threading.Lock()


def _install_stub() -> None:
    spec = importlib.util.find_spec("pyroute2")
    if spec is None:
        raise ModuleNotFoundError("No module named 'pyroute2'", name="pyroute2")
    stub = types.ModuleType("pyroute2")
    stub.__spec__ = spec
    stub.__file__ = spec.origin
    stub.__path__ = list(spec.submodule_search_locations or ())
    stub.__package__ = "pyroute2"

    def __getattr__(name, _stub=stub, _origin=spec.origin):
        if name.startswith("__") or _stub.__dict__.get("_minibox_full"):
            raise AttributeError(name)
        # ``from pyroute2 import config`` asks for the attribute before it
        # falls back to the submodule: a submodule is imported, not the world.
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:
            return importlib.import_module(f"pyroute2.{name}")
        _stub.__dict__["_minibox_full"] = True
        with open(_origin) as fh:
            code = compile(fh.read(), _origin, "exec")
        exec(code, _stub.__dict__)  # noqa: S102 - the real pyroute2/__init__.py, once
        try:
            return _stub.__dict__[name]
        except KeyError:
            raise AttributeError(name) from None

    stub.__getattr__ = __getattr__
    sys.modules["pyroute2"] = stub


def iproute():
    """The ``IPRoute`` class and ``NetlinkError``, imported at first use."""
    with _lock:
        if "pyroute2" not in sys.modules:
            _install_stub()
    from pyroute2.iproute.linux import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    return IPRoute, NetlinkError
