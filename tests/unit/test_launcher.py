"""The ``minibox`` launcher: python -IS, the venv's packages on sys.path, nothing from the caller."""

import os
import subprocess
import sys

from minibox import launcher


def _write(tmp_path) -> str:
    path = str(tmp_path / "minibox")
    assert launcher.main(["launcher", path]) == 0
    return path


def test_launcher_runs_minibox_and_is_executable(tmp_path):
    path = _write(tmp_path)
    assert os.stat(path).st_mode & 0o777 == 0o755
    assert open(path).readline() == f"#!{sys.executable} -IS\n"
    r = subprocess.run([path, "version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("minibox version ")


def test_launcher_ignores_pythonpath_and_the_current_directory(tmp_path):
    # A root tool must not import a 'minibox' planted where it is run, or named by PYTHONPATH.
    evil = tmp_path / "evil"
    (evil / "minibox").mkdir(parents=True)
    (evil / "minibox" / "__init__.py").write_text("raise SystemExit('planted module imported')\n")
    path = _write(tmp_path)
    r = subprocess.run([path, "version"], capture_output=True, text=True, timeout=30, cwd=str(evil),
                       env=dict(os.environ, PYTHONPATH=str(evil)))
    assert r.returncode == 0, r.stderr
    assert "planted" not in r.stderr


def test_usage_error_without_a_path(capsys):
    assert launcher.main(["launcher"]) == 2
    assert "usage: python -m minibox.launcher PATH" in capsys.readouterr().err
