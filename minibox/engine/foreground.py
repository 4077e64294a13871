"""``run`` without ``-d``: the minibox process itself watches the container.

Without ``-t`` the container inherits our stdio directly (nothing to copy).
With ``-t`` it gets a pty made in its own devpts; we put our terminal in raw
mode, copy bytes both ways and follow window-size changes. Signals sent to
us (INT, TERM, HUP, QUIT, USR1, USR2) are forwarded to the container's init,
which runs in its own session so a terminal's Ctrl-C is not delivered twice.
"""

import os
import signal

from minibox.engine import containers

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2)


def run(root: str, rec: dict, *, interactive: bool, tty: bool, trace=None) -> int:
    """Start the created container, wait for it, record its exit; return docker's exit code."""
    stdin = 0 if interactive else os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    winsize = _winsize(0) if tty else None
    # Signals that arrive while the container starts are held and delivered
    # once it runs, so a quick SIGTERM is never lost or fatal to us.
    target = {"pid": 0}
    pending = []

    def forward(signum, _frame):
        if not target["pid"]:
            pending.append(signum)
            return
        try:
            os.kill(target["pid"], signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        init = containers.start(root, rec, stdio=None if tty else (stdin, 1, 2), winsize=winsize,
                                trace=trace)
    except BaseException:
        _restore(previous)
        raise
    finally:
        if stdin != 0:
            os.close(stdin)
    pid = target["pid"] = init.pid
    for signum in pending:
        forward(signum, None)
    try:
        if tty and init.console_fd is not None:
            _relay_tty(init.console_fd, pid, interactive)
        _, status = os.waitpid(pid, 0)
    finally:
        _restore(previous)
    code = os.waitstatus_to_exitcode(status)
    exit_code = 128 - code if code < 0 else code
    containers.finish(root, rec, exit_code, init.cgroup)
    return exit_code


def _restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _winsize(fd: int) -> bytes | None:
    import fcntl
    import termios

    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def _relay_tty(master: int, pid: int, interactive: bool) -> None:
    """Copy our stdin to the pty and the pty to our stdout until the container closes it."""
    import fcntl
    import select
    import termios
    import tty as ttymod

    saved = None
    if interactive and os.isatty(0):
        saved = termios.tcgetattr(0)
        ttymod.setraw(0)

    def resize(_signum, _frame):
        size = _winsize(0)
        if size:
            try:
                fcntl.ioctl(master, termios.TIOCSWINSZ, size)
            except OSError:
                pass

    old_winch = signal.signal(signal.SIGWINCH, resize)
    watch = [master] + ([0] if interactive else [])
    try:
        while True:
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""  # EIO: every slave fd is closed, the container is done
                if not data:
                    break
                _write_all(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    watch.remove(0)  # our stdin ended; keep showing output
                    continue
                _write_all(master, data)
    finally:
        signal.signal(signal.SIGWINCH, old_winch)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
