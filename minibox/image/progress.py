"""Pull/load progress: docker-style per-layer lines, redrawn in place on a terminal.

Not on a terminal (CI logs, pipes) each status change is one plain line and
byte counts are not printed; ``quiet`` prints nothing.
"""

import threading
import time


class Progress:
    def __init__(self, out, quiet: bool = False):
        self.out = out
        self.quiet = quiet
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.lock = threading.Lock()
        self.rows: dict[str, str] = {}
        self.drawn = 0
        self.last = 0.0

    def line(self, text: str) -> None:
        """A line above the layer rows (``latest: Pulling from library/alpine``)."""
        if self.quiet:
            return
        with self.lock:
            self._finish_rows()
            self.out.write(text + "\n")
            self.out.flush()

    def update(self, key: str, status: str, current: int | None = None, total: int | None = None) -> None:
        if self.quiet:
            return
        with self.lock:
            if not self.tty:
                if current is None:
                    self.out.write(f"{key}: {status}\n")
                    self.out.flush()
                return
            text = f"{key}: {status}"
            if current is not None:
                text += " " + _bar(current, total)
            changed = self.rows.get(key, "").split(" [")[0] != text.split(" [")[0]
            self.rows[key] = text
            now = time.monotonic()
            if changed or now - self.last > 0.1:
                self.last = now
                self._redraw()

    def _redraw(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}A")
        for text in self.rows.values():
            self.out.write("\x1b[2K" + text + "\n")
        self.drawn = len(self.rows)
        self.out.flush()

    def _finish_rows(self) -> None:
        if self.tty and self.rows:
            self._redraw()
        self.rows.clear()
        self.drawn = 0

    def done(self) -> None:
        if self.quiet:
            return
        with self.lock:
            self._finish_rows()


def _bar(current: int, total: int | None) -> str:
    from minibox.image.humanize import size

    if not total:
        return size(current)
    width = 40
    filled = min(width, int(width * current / total))
    return "[" + "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (width - filled) + f"]  {size(current)}/{size(total)}"
