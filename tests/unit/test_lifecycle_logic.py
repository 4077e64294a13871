"""Pure logic of the lifecycle verbs: signal names, attach framing, the start marker."""

import json
import os
import signal
import struct
import subprocess
import sys

import pytest

from minibox.engine import attach, detached, lifecycle, records
from minibox.errors import UsageError


@pytest.mark.parametrize("text,expected", [("TERM", signal.SIGTERM), ("SIGTERM", signal.SIGTERM),
                                           ("sigkill", signal.SIGKILL), ("15", 15), ("USR1", signal.SIGUSR1)])
def test_parse_signal_accepts_dockers_three_spellings(text, expected):
    assert lifecycle.parse_signal(text) == expected


@pytest.mark.parametrize("text", ["NOSUCH", "0", "65", "", "SIG"])
def test_parse_signal_refuses_unknown_signals(text):
    with pytest.raises(UsageError):
        lifecycle.parse_signal(text)


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(data)) + data


def test_deframe_splits_streams_and_keeps_an_incomplete_frame(capfd):
    buf = frame(1, b"out\n") + frame(2, b"err\n") + frame(1, b"partial")
    rest = attach._deframe(buf + frame(1, b"tail")[:6])
    assert rest == frame(1, b"tail")[:6]
    out, err = capfd.readouterr()
    assert (out, err) == ("out\npartial", "err\n")


def test_deframe_waits_for_the_whole_payload(capfd):
    whole = frame(2, b"x" * 100)
    assert attach._deframe(whole[:50]) == whole[:50]
    assert capfd.readouterr() == ("", "")
    assert attach._deframe(whole) == b""
    assert capfd.readouterr().err == "x" * 100


def test_attach_address_fits_sun_path_whatever_the_root():
    assert len(detached.attach_address(1023).encode()) < 108


def _record(root: str, status: str) -> dict:
    cid = "ab" * 32
    os.makedirs(records.container_dir(root, cid))
    rec = {"id": cid, "state": {"status": status, "pid": 0, "exit_code": 0, "error": ""}}
    with open(os.path.join(records.container_dir(root, cid), records.RECORD), "w") as f:
        json.dump(rec, f)
    return rec


def test_a_start_killed_half_way_is_flagged_for_cleanup(tmp_path):
    rec = _record(str(tmp_path), "created")
    # A process that is gone for sure: it has exited and been reaped.
    gone = subprocess.Popen([sys.executable, "-c", "import os; print(os.getpid())"], stdout=subprocess.PIPE)
    pid = int(gone.communicate()[0])
    with open(os.path.join(records.container_dir(str(tmp_path), rec["id"]), records.STARTING), "w") as f:
        f.write(f"{pid} 12345")
    state = records.load(str(tmp_path), rec["id"])["state"]
    assert state["status"] == "created" and state["needs_cleanup"] and state["exit_code"] == 128


def test_a_start_in_progress_is_left_alone_and_the_marker_goes(tmp_path):
    rec = _record(str(tmp_path), "created")
    records.mark_starting(str(tmp_path), rec["id"])  # our own, live pid
    assert "needs_cleanup" not in records.load(str(tmp_path), rec["id"])["state"]
    records.clear_starting(str(tmp_path), rec["id"])
    records.clear_starting(str(tmp_path), rec["id"])  # idempotent
    assert not os.path.exists(os.path.join(records.container_dir(str(tmp_path), rec["id"]), records.STARTING))


@pytest.mark.parametrize("data,expected", [
    (b"abc", (b"abc", b"", False)),
    (b"ab\x10\x11cd", (b"ab", b"", True)),
    (b"ab\x10", (b"ab", b"\x10", False)),       # maybe the start of the keys: held back
    (b"\x10x", (b"\x10x", b"", False)),          # ctrl-p alone goes through
    (b"\x11", (b"\x11", b"", False)),
])
def test_detach_keys_are_found_across_reads(data, expected):
    assert attach._scan_detach(data) == expected
