"""``attach`` (and ``start -a``): a client of the container monitor's attach socket.

The monitor (csrc/monitor.c) sends every output chunk to each connected
client, raw for a tty container, else in docker's framing (8 byte header:
stream 1|2, three zero bytes, big-endian u32 length). Bytes we send become
the container's stdin (when it was created with -i). The monitor writes the
exit file before it closes the clients, so on EOF the exit code is known.
Typing docker's detach keys (ctrl-p ctrl-q) leaves the container running.
"""

import os
import signal
import socket
import struct

from minibox.engine import containers, records
from minibox.engine.detached import attach_address
from minibox.errors import Conflict, MiniboxError

_HEADER = struct.Struct(">BxxxI")
DETACH_KEYS = b"\x10\x11"  # docker's default: ctrl-p ctrl-q leaves the container running
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def connect(root: str, cid: str) -> socket.socket:
    """Connect to the monitor of container ``cid``; MiniboxError when it has none."""
    dirfd = os.open(records.container_dir(root, cid), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(attach_address(dirfd))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise MiniboxError(f"container {cid} has no monitor to attach to: only containers started "
                           "with run -d or start can be attached") from None
    finally:
        os.close(dirfd)
    return sock


def attach(root: str, ref: str, *, stdin: bool = True, sig_proxy: bool = True,
           sock: socket.socket | None = None) -> int:
    """Relay our stdio to the running container ``ref`` until it exits; return its exit code."""
    cid = records.resolve(root, ref)
    rec = records.load(root, cid)
    status = rec["state"]["status"]
    if sock is None:
        if status == "paused":
            raise Conflict("You cannot attach to a paused container, unpause it first")
        if status != "running":
            raise Conflict("You cannot attach to a stopped container, start it first")
        sock = connect(root, cid)
    tty = bool(rec["config"].get("Tty"))
    send_input = stdin and bool(rec["config"].get("OpenStdin"))
    previous = {}
    if sig_proxy and not tty:
        def forward(signum, _frame):
            try:
                containers.kill(records.load(root, cid), signum)
            except (MiniboxError, ProcessLookupError):
                pass

        previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    saved = None
    if tty and send_input and os.isatty(0):
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(0)
        ttymod.setraw(0)
    try:
        detached_by_user = _relay(sock, tty, send_input)
    finally:
        sock.close()
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if detached_by_user:
        return 0  # the container runs on; `attach` again to get back
    from minibox.engine import lifecycle

    rec = lifecycle.wait_exit(root, cid, timeout=30)
    if rec is None:
        return 0  # our connection ended but the container runs on (the monitor dropped us)
    return rec["state"]["exit_code"]


def _relay(sock: socket.socket, tty: bool, send_input: bool) -> bool:
    """Copy until the monitor closes the connection (False) or the user typed the detach keys (True)."""
    import select

    fd = sock.fileno()
    watch = [fd] + ([0] if send_input else [])
    pending = b""
    held = b""  # input that may be the start of the detach keys
    while True:
        try:
            ready, _, _ = select.select(watch, [], [])
        except InterruptedError:
            continue
        if fd in ready:
            try:
                data = os.read(fd, 65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return False
            if tty:
                _write_all(1, data)
            else:
                pending = _deframe(pending + data)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                if held:
                    sock.sendall(held)
                    held = b""
                watch.remove(0)
                sock.shutdown(socket.SHUT_WR)  # the monitor keeps sending output
                continue
            data, held, detach = _scan_detach(held + data)
            if data:
                sock.sendall(data)
            if detach:
                return True


def _scan_detach(data: bytes, keys: bytes = DETACH_KEYS) -> tuple[bytes, bytes, bool]:
    """Split input at docker's detach keys: (bytes to send, bytes held back, detach?).

    A trailing prefix of the sequence is held back until the next read
    says whether the sequence completes.
    """
    at = data.find(keys)
    if at >= 0:
        return data[:at], b"", True
    for n in range(min(len(keys) - 1, len(data)), 0, -1):
        if data.endswith(keys[:n]):
            return data[:-n], data[-n:], False
    return data, b"", False


def _deframe(buf: bytes) -> bytes:
    """Write every complete frame of ``buf`` to stdout or stderr; return the incomplete rest."""
    while len(buf) >= _HEADER.size:
        stream, length = _HEADER.unpack_from(buf)
        end = _HEADER.size + length
        if len(buf) < end:
            break
        _write_all(2 if stream == 2 else 1, buf[_HEADER.size:end])
        buf = buf[end:]
    return buf


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
