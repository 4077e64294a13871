"""Smoke test of the benchmark machinery (bench/harness.py, bench/chart.py) on trivial commands.

No root, no containers: `true` against `sleep 0.001`, plus an absent and a
failing side, must come out as interleaved medians, honest ratios and a
well-formed results file, table and PNG. Timings are never asserted beyond
what the commands guarantee (sleep 0.001 cannot take less than 1 ms).
"""

import json
import os
import sys
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Appended, not prepended: bench/ lives only in the tree, while minibox must
# still come from the installed package (the tree has no compiled shim).
sys.path.append(REPO)

from bench import chart, harness  # noqa: E402


def test_interleaved_order_and_warmup():
    calls = []
    sides = [harness.Side("a", lambda: calls.append("a")), harness.Side("b", lambda: calls.append("b"))]
    ticks = iter(range(1000))
    out = harness.compare(sides, rounds=3, warmup=2, clock=lambda: next(ticks))
    assert calls == ["a", "b"] * 5
    assert out["a"]["n"] == 3 and out["b"]["n"] == 3
    assert out["a"]["median"] == 1  # every call takes exactly one tick of the fake clock


def test_a_returned_float_is_the_sample():
    values = iter([9.0, 3.0, 1.0, 2.0])
    out = harness.compare([harness.Side("inner", lambda: next(values))], rounds=3, warmup=1)
    assert out["inner"]["samples"] == [3.0, 1.0, 2.0] and out["inner"]["median"] == 2.0


def test_trivial_commands_absent_and_failed(tmp_path):
    setups = []
    sides = [
        harness.Side.argv("minibox", ["true"], setup=lambda: setups.append("up"),
                          teardown=lambda: setups.append("down")),
        harness.Side.argv("sleeper", ["sleep", "0.001"]),
        harness.Side("ghost", absent="ghost is not installed"),
        harness.Side.argv("broken", ["false"]),
    ]
    out = harness.compare(sides, rounds=3, warmup=1)
    assert setups == ["up", "down"]
    assert list(out) == ["minibox", "sleeper", "ghost", "broken"]
    assert out["sleeper"]["n"] == 3 and len(out["sleeper"]["samples"]) == 3
    assert out["sleeper"]["median"] >= 0.001
    assert out["ghost"] == {"absent": "ghost is not installed"}
    assert "exit 1" in out["broken"]["failed"] and "median" not in out["broken"]

    res = harness.Results(meta={"machine": harness.machine()})
    entry = res.add_comparison("smoke", "true vs sleep", out)
    assert entry["ratios"]["minibox/ghost"] is None and entry["ratios"]["minibox/broken"] is None
    expected = round(out["minibox"]["median"] / out["sleeper"]["median"], 4)
    assert entry["ratios"]["minibox/sleeper"] == expected
    res.add_series("smoke", "per item", [{"x": 1, "value": 0.5}, {"x": 10, "value": 0.25}], "s")
    res.add_value("smoke", "disk", 4096, "bytes")
    res.add_absent("smoke", "bridge", "no bridge here")
    res.add_headline("true / sleep", entry["ratios"]["minibox/sleeper"], 1.0)
    res.add_headline("true / ghost", None, 1.0, "ghost is not installed")

    path = tmp_path / "results" / "results.json"
    res.write_json(str(path))
    data = json.loads(path.read_text())
    assert set(data) == {"meta", "headline", "benchmarks", "notes"}
    assert [b["kind"] for b in data["benchmarks"]] == ["comparison", "series", "value", "absent"]
    assert data["headline"][0]["met"] is (expected <= 1.0)
    assert data["headline"][1] == {"label": "true / ghost", "ratio": None, "target": 1.0, "met": None,
                                   "absent": "ghost is not installed"}
    assert not [p for p in os.listdir(path.parent) if ".tmp" in p]

    text = harness.table(res)
    assert "absent: ghost is not installed" in text
    assert "failed: " in text and "absent: no bridge here" in text
    assert f"{expected:.3f}" in text


def test_plain_png_is_valid(tmp_path):
    path = tmp_path / "chart.png"
    chart._write_plain_png([{"label": "x", "ratio": 0.5, "target": 1.0, "met": True},
                            {"label": "y", "ratio": 2.0, "target": 1.0, "met": False}], str(path))
    blob = path.read_bytes()
    assert blob.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(blob[16:20], "big"), int.from_bytes(blob[20:24], "big")
    idat_len = int.from_bytes(blob[33:37], "big")
    assert blob[37:41] == b"IDAT"
    raw = zlib.decompress(blob[41:41 + idat_len])
    assert len(raw) == height * (1 + 3 * width)
    assert b"\xc0\x39\x2b" in raw  # the red of the bar over its target
