"""BuildKit's ``--progress=plain`` output: numbered vertices, their logs, CACHED or DONE.

::

    #5 [2/3] RUN make
    #5 0.215 cc -o app app.c
    #5 DONE 1.3s

The numbers, the ``[stage n/total]`` labels and the ``CACHED``/``DONE 0.3s``/
``ERROR`` lines match BuildKit's, so the seed's lessons read the same under
minibox and docker. With ``quiet`` nothing is printed (``build -q``).
"""

import sys
import time


class Progress:
    """Prints vertices to ``stream`` (stderr, like docker) unless quiet."""

    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.count = 0

    def vertex(self, name: str) -> "Vertex":
        self.count += 1
        v = Vertex(self, self.count, name)
        self.write(f"\n#{v.number} {name}")
        return v

    def write(self, line: str) -> None:
        if not self.quiet:
            self.stream.write(line + "\n")
            self.stream.flush()


class Vertex:
    """One step on screen; ``log``, then exactly one of ``cached``/``done``/``error``."""

    def __init__(self, progress: Progress, number: int, name: str):
        self.progress = progress
        self.number = number
        self.name = name
        self.started = time.monotonic()

    def log(self, text: str, elapsed: float | None = None) -> None:
        if elapsed is None:
            self.progress.write(f"#{self.number} {text}")
        else:
            self.progress.write(f"#{self.number} {elapsed:.3f} {text}")

    def cached(self) -> None:
        self.progress.write(f"#{self.number} CACHED")

    def done(self) -> None:
        self.progress.write(f"#{self.number} DONE {time.monotonic() - self.started:.1f}s")

    def error(self, message: str) -> None:
        self.progress.write(f"#{self.number} ERROR: {message}")
