"""eth0's address and default route, set from inside the container's netns.

With the classic ioctls on an AF_INET socket (SIOCSIFADDR, SIOCSIFNETMASK,
SIOCSIFFLAGS, SIOCADDRT, in the C shim), not with netlink. The reason is
the teardown: the kernel frees a netlink socket one RCU grace period after
it is closed, and the socket holds its netns until then. One made inside the
container's netns kept that netns, and the veth pair that dies with it,
alive 10 to 20 ms after a short container exited, and ``run --rm`` waits for
the veth to go. An unbound AF_INET socket is freed at once.
"""

import os

from minibox import syscalls as sc


def run_in_netns(netns_path: str, work) -> None:
    """Call ``work()`` in a thread that has entered the netns at ``netns_path``.

    setns(CLONE_NEWNET) moves only the calling thread: the throwaway thread
    enters, works and ends, and the process never leaves its own netns.
    (``_thread``, not ``threading``: one lock is all the joining needed, and
    threading costs 2 ms to import.)
    """
    import _thread

    failure: list[BaseException] = []
    done = _thread.allocate_lock()
    done.acquire()

    def enter():
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, sc.CLONE_NEWNET, netns_path)
            finally:
                os.close(fd)
            work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)
        finally:
            done.release()

    _thread.start_new_thread(enter, ())
    done.acquire()
    if failure:
        raise failure[0]


def configure(netns_path: str, ip: str, prefixlen: int, gateway: str) -> None:
    """lo up; ``ip/prefixlen`` on eth0, eth0 up, default route via ``gateway``."""

    def work():
        sc.link_up("lo")  # minibox's init has done it already; any other netns owner may not
        sc.set_ipv4("eth0", ip, prefixlen)
        sc.link_up("eth0")
        sc.add_default_route(gateway)

    run_in_netns(netns_path, work)
