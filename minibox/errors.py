"""Errors minibox reports to its user, each with docker's exit code.

The CLI prints ``minibox: <message>`` once, at the top, and exits with
``exit_code``: 125 for minibox's own failures, 126 when the command cannot be
executed, 127 when it is not found (docker's convention).
"""

import errno as _errno
import os

EXIT_RUNTIME = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127


class MiniboxError(Exception):
    """An error that ends the command with a one-line message and an exit code."""

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(MiniboxError):
    """Bad flags or arguments (docker prints a usage hint and exits 125)."""


class NotFound(MiniboxError):
    """An image, container, network or volume that does not exist."""


class Conflict(MiniboxError):
    """A name already in use, or an object in use that cannot be removed."""


class InvalidTransition(MiniboxError):
    """A lifecycle move the container's state does not allow (start a running one...)."""


class SyscallError(OSError):
    """An OSError that carries the operation and the path it was applied to.

    ``str()`` reads ``pivot_root /var/lib/minibox/x/merged: Invalid argument``
    so every failure names the syscall and the path, as crun's errors do.
    """

    def __init__(self, err: int, op: str, path: str | os.PathLike | None = None):
        super().__init__(err, os.strerror(err))
        self.op = op
        self.path = os.fspath(path) if path is not None else None

    def __str__(self) -> str:
        where = f"{self.op} {self.path}" if self.path else self.op
        return f"{where}: {self.strerror}"

    def __reduce__(self):
        return (SyscallError, (self.errno, self.op, self.path))


def exec_exit_code(err: int) -> int:
    """docker's exit code for a failed execve: 127 not found, 126 otherwise."""
    return EXIT_NOT_FOUND if err in (_errno.ENOENT, _errno.ENOTDIR) else EXIT_CANNOT_EXECUTE
