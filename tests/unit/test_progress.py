import io

from minibox.image.progress import Progress


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_when_not_a_tty():
    out = io.StringIO()
    p = Progress(out)
    p.line("1: Pulling from test/x")
    p.update("abc", "Pulling fs layer")
    p.update("abc", "Downloading", 10, 100)  # byte counts are not logged
    p.update("abc", "Pull complete")
    p.done()
    assert out.getvalue() == "1: Pulling from test/x\nabc: Pulling fs layer\nabc: Pull complete\n"


def test_bars_redrawn_in_place_on_a_tty():
    out = Tty()
    p = Progress(out)
    p.update("a", "Pulling fs layer")
    p.update("b", "Pulling fs layer")
    p.update("a", "Downloading", 50, 100)
    p.done()
    text = out.getvalue()
    assert "\x1b[2A" in text and "[====" in text and "50B/100B" in text


def test_quiet_prints_nothing():
    out = io.StringIO()
    p = Progress(out, quiet=True)
    p.line("x")
    p.update("a", "y")
    assert out.getvalue() == ""
