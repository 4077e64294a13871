"""minibox.libexec.path: where the helpers are, and a clear error when they are not."""

import os

import pytest

from minibox import libexec
from minibox.errors import MiniboxError


def test_unknown_helper_is_refused():
    with pytest.raises(MiniboxError, match="unknown minibox helper: sh"):
        libexec.path("sh")


def test_missing_helper_names_the_path_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(libexec, "_DIR", str(tmp_path))
    with pytest.raises(MiniboxError) as err:
        libexec.path(libexec.MONITOR)
    assert str(tmp_path / "minibox-monitor") in str(err.value)
    assert "python3 -m minibox._build_libexec" in str(err.value)
    assert err.value.exit_code == 125


def test_not_executable_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(libexec, "_DIR", str(tmp_path))
    (tmp_path / "minibox-init").write_text("")
    if os.geteuid() == 0:
        # root passes X_OK only when some execute bit is set: still refused with 0644.
        os.chmod(tmp_path / "minibox-init", 0o644)
    with pytest.raises(MiniboxError, match="missing or not executable"):
        libexec.path(libexec.INIT)


def test_found_helper_is_absolute(tmp_path, monkeypatch):
    monkeypatch.setattr(libexec, "_DIR", str(tmp_path))
    exe = tmp_path / "minibox-init"
    exe.write_text("")
    exe.chmod(0o755)
    assert libexec.path(libexec.INIT) == str(exe)
    assert os.path.isabs(libexec.path(libexec.INIT))
