"""The VM harness's pure parts: the newc cpio writer, module load order, the summary line."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# tests/ is not a package; the harness is imported as the namespace package
# tests.vm from the tree. Appended, so an installed minibox still wins.
sys.path.append(str(Path(__file__).resolve().parents[2]))
from tests.vm import initramfs, run  # noqa: E402


def test_load_order_puts_dependencies_first_and_reports_missing():
    deps = {"9p": ["9pnet", "netfs"], "9pnet_virtio": ["9pnet", "virtio"], "9pnet": [], "netfs": [], "virtio": []}
    index = {name: f"/x/{name}.ko" for name in deps}
    order, missing = initramfs.load_order(["9pnet_virtio", "9p", "nope"], index, deps.__getitem__)
    assert order == ["9pnet", "virtio", "9pnet_virtio", "netfs", "9p"]
    assert missing == ["nope"]


def test_load_order_detects_cycles():
    deps = {"a": ["b"], "b": ["a"]}
    with pytest.raises(ValueError, match="cycle"):
        initramfs.load_order(["a"], {"a": "a", "b": "b"}, deps.__getitem__)


def _cpio_tool():
    if shutil.which("cpio"):
        return ["cpio"]
    if shutil.which("busybox"):
        return ["busybox", "cpio"]
    return None


@pytest.mark.skipif(not _cpio_tool(), reason="neither cpio(1) nor busybox to cross-check the archive")
def test_cpio_archive_unpacks_with_cpio(tmp_path):
    c = initramfs.Cpio()
    c.file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
    c.symlink("bin/sh", "busybox")
    c.file("etc/x", b"abc")
    data = c.finish()
    assert len(data) % 4 == 0
    subprocess.run(_cpio_tool() + ["-idm"], input=data, cwd=tmp_path, check=True)
    assert (tmp_path / "bin" / "hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.access(tmp_path / "bin" / "hello", os.X_OK)
    assert os.readlink(tmp_path / "bin" / "sh") == "busybox"
    assert (tmp_path / "etc" / "x").read_bytes() == b"abc"


def test_cpio_headers_are_newc():
    data = initramfs.Cpio().finish()
    assert data.startswith(b"070701") and b"TRAILER!!!" in data


def test_modinfo_reads_the_section_of_a_real_elf(tmp_path):
    gcc = shutil.which("gcc")
    if not gcc:
        pytest.skip("gcc not installed to build an object with a .modinfo section")
    src = tmp_path / "m.c"
    src.write_text('__attribute__((section(".modinfo"), used)) static const char a[] = "depends=foo,bar";\n'
                   '__attribute__((section(".modinfo"), used)) static const char b[] = "name=m";\n')
    subprocess.run([gcc, "-c", "-o", str(tmp_path / "m.ko"), str(src)], check=True)
    info = initramfs.modinfo(str(tmp_path / "m.ko"))
    assert info["depends"] == "foo,bar" and info["name"] == "m"


def test_summary_finds_pytest_last_line():
    lines = ["....", "=== 3 passed, 1 skipped in 12.30s ===", "[ 9.1] reboot: Power down"]
    assert run.summary(lines) == "3 passed, 1 skipped in 12.30s"
    assert run.summary(["8 passed in 35.75s"]) == "8 passed in 35.75s"
    assert run.summary(["nothing"]) is None


def test_harness_options_stop_at_the_first_pytest_arg():
    opts, rest = run.parse_args(["--timeout", "100", "--check", "-q", "tests/integration", "--timeout", "5"])
    assert opts["timeout"] == 100 and opts["check"] is True
    assert rest == ["-q", "tests/integration", "--timeout", "5"]


def test_run_script_quotes_arguments():
    script = run.run_script(["python3", "-m", "pytest", "-k", "a and b"], "/work/my dir", check=False)
    assert "cd '/work/my dir' || exit 125" in script
    assert "'a and b'" in script
