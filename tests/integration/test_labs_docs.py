"""Every command printed in docs/labs/ works as printed.

Each ``$ command`` line of the labs' ``console`` blocks is run, in order,
with bash, ``minibox`` on the PATH and ``MINIBOX_ROOT`` pointing at a fresh
root holding busybox:latest (so the shared /var/lib/minibox is never
touched). Its exit status must be the one the page shows (``[exit status N]``
after the output, else 0), and the lines the page shows for the commands
whose output does not depend on ids, times or addresses must appear.

Two substitutions keep parallel runs apart: the labs' scratch dirs
``/tmp/labN`` become dirs of this test, and host port 8080 a free port.
"""

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, Minibox, _cleanup_root, _ensure_busybox_tar, minibox_command, \
    private_default_bridge, requires

pytestmark = requires("root", "overlay", "busybox")

LABS = REPO / "docs" / "labs"
# Output lines that are the same on every machine: checked verbatim when shown.
STABLE = re.compile(r"^(hello|hi|kept|exit: \d+|\d+|minibox busybox image|app|Dockerfile|app\.txt|"
                    r"\.dockerignore|secret\.txt|debug\.log|node_modules|A /hello\.txt|"
                    r"PID +USER +COMMAND| +1 root +sh|.*can't fork.*|"
                    r" Storage Driver: overlay2| Cgroup Driver: cgroupfs)$")


def console_commands(page: Path) -> list[tuple[str, list[str], int]]:
    """[(command, output lines shown, exit status shown)] of a lab page."""
    result, inblock = [], False
    for line in page.read_text().splitlines():
        if line.startswith("```console"):
            inblock = True
        elif inblock and line.startswith("```"):
            inblock = False
        elif inblock and line.startswith("$ "):
            result.append([line[2:], [], 0])
        elif inblock and result:
            m = re.fullmatch(r"\[exit status (\d+)\]", line)
            if m:
                result[-1][2] = int(m[1])
            else:
                result[-1][1].append(line)
    return [tuple(r) for r in result]


@pytest.fixture
def lab_env(tmp_path):
    root = tempfile_root()
    private_default_bridge(root)
    Minibox(root)("import", "-c", 'CMD ["sh"]', str(_ensure_busybox_tar()), "busybox:latest", check=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    cmd = " ".join(f"'{c}'" for c in minibox_command())
    pythonpath = f"PYTHONPATH='{REPO}'${{PYTHONPATH:+:$PYTHONPATH}} " if "-m" in minibox_command() else ""
    (bindir / "minibox").write_text(f'#!/bin/sh\n{pythonpath}exec {cmd} "$@"\n')
    (bindir / "minibox").chmod(0o755)
    if not shutil.which("wget") and shutil.which("busybox"):
        (bindir / "wget").symlink_to(shutil.which("busybox"))
    env = dict(os.environ, MINIBOX_ROOT=root, PATH=f"{bindir}:{os.environ['PATH']}")
    yield env, tmp_path
    _cleanup_root(root)


def tempfile_root() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="minibox-test-", dir="/var/tmp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("page", sorted(p.name for p in LABS.glob("[0-9]*.md")))
def test_every_command_of_the_lab_works_as_printed(lab_env, page):
    env, scratch = lab_env
    port = str(free_port())
    commands = console_commands(LABS / page)
    assert commands, f"{page} shows no command"
    for command, shown, status in commands:
        real = re.sub(r"/tmp/(lab\d+)", lambda m: str(scratch / m[1]), command).replace("8080", port)
        r = subprocess.run(["bash", "-c", real], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=env, cwd=scratch, timeout=120)
        assert r.returncode == status, f"{page}: `{command}` -> {r.returncode}, page shows {status}:\n{r.stdout}"
        got = r.stdout.splitlines()
        for line in shown:
            if STABLE.match(line) and not re.fullmatch(r"\d+", line):
                assert line in got, f"{page}: `{command}` did not print {line!r}:\n{r.stdout}"
