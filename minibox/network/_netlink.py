"""Load only pyroute2's rtnetlink client, not the whole library.

``import pyroute2.iproute.linux`` first runs ``pyroute2/__init__.py``, which
imports every module pyroute2 has (IPDB, NDB, nftables, wireguard, plan9 ...)
and roughly doubles the cost of the import on this start-up path. When
nothing has imported pyroute2 yet, a bare package module standing for it is
registered so the submodule loads alone. The stand-in keeps the real
package's behaviour for later users: the first attribute it lacks
(``pyroute2.IPRoute`` ...) runs the real ``__init__`` in its namespace.

Also: ``rtnl_socket_in(netns_path)`` opens the netlink socket inside a
container's netns from a short-lived thread, instead of pyroute2's default of
forking a helper process per netns socket.
"""

import importlib.util
import os
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


def rtnl_socket_in(netns_path: str) -> int:
    """A NETLINK_ROUTE socket fd created inside the netns at ``netns_path``.

    setns(CLONE_NEWNET) only moves the calling thread, and a socket stays in
    the netns it was created in; so a throwaway thread enters the netns,
    creates the socket and ends, and the process never leaves its own netns.
    """
    import socket

    from minibox.syscalls import CLONE_NEWNET, setns

    result: dict = {}

    def enter():
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(fd, CLONE_NEWNET, netns_path)
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)
            result["fd"] = sock.detach()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=enter, name="minibox-netns")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["fd"]
