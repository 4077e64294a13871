"""minibox build end to end: real containers, overlay layers, the cache, .dockerignore.

Needs root, overlayfs and the busybox image. Each test builds in its own
temporary context; images are looked at by running a real container on the
image's layers (the builder's own RUN machinery), and, when the cgroup
driver is present, with ``minibox run``.
"""

import json
import os
import re
import tarfile

import pytest

try:  # tests/ is a package on main since the cgroups merge; it was not before
    from tests.conftest import requires
except ImportError:
    from conftest import requires

pytestmark = [pytest.mark.root, requires("root", "overlay", "busybox")]


def image_run(root: str, ref: str, argv: list[str] | None = None) -> tuple[int, str]:
    """Run ``argv`` (default: the image's ENTRYPOINT + CMD) in a container of ``ref``'s layers."""
    from minibox.build import runstep
    from minibox.build.workspace import Workspace
    from minibox.image.store import ImageStore

    store = ImageStore(root)
    img = store.resolve(ref)
    cfg = img.config.get("config") or {}
    if argv is None:
        argv = (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or [])
    lines = []
    with Workspace(root, store, img.diff_ids) as ws:
        code = runstep.run(ws.rootfs, ws.path("bundle"), argv, cfg.get("Env") or [],
                           cfg.get("WorkingDir") or "/", cfg.get("User") or "",
                           lambda t, line: lines.append(line.decode()))
    return code, "\n".join(lines)


def image_sh(root: str, ref: str, script: str) -> tuple[int, str]:
    """Run ``sh -c script`` in a container of ``ref``'s layers; (exit code, output)."""
    return image_run(root, ref, ["/bin/sh", "-c", script])


def write(ctx, files: dict[str, str]):
    for rel, text in files.items():
        path = ctx / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def steps(output: str) -> dict[str, str]:
    """instruction text → "CACHED" | "DONE" | "ERROR" from BuildKit-style plain output."""
    names, result = {}, {}
    for line in output.splitlines():
        m = re.match(r"#(\d+) \[(?:[\w-]+ )?\d+/\d+\] (.*)$", line)
        if m:
            names[m.group(1)] = m.group(2)
            continue
        m = re.match(r"#(\d+) (CACHED|DONE|ERROR)", line)
        if m and m.group(1) in names:
            result[names[m.group(1)]] = m.group(2)
    return result


def ran(output: str, text: str) -> bool:
    """Whether a RUN printed ``text`` (a "#N 0.123 text" log line), i.e. it really ran."""
    return re.search(rf"^#\d+ \d+\.\d+ {re.escape(text)}$", output, re.MULTILINE) is not None


def cached_steps(output: str) -> set[str]:
    return {name for name, state in steps(output).items() if state == "CACHED" and not name.startswith("FROM")}


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


APP = {"requirements.txt": "dep==1\n", "app/main.sh": "echo v1\n", "app/util.sh": "u=1\n"}

BAD_ORDER = """\
FROM busybox
WORKDIR /app
COPY . /app
RUN echo installing && cp requirements.txt /deps.txt
CMD ["sh", "/app/app/main.sh"]
"""

GOOD_ORDER = """\
FROM busybox
WORKDIR /app
COPY requirements.txt /app/
RUN echo installing && cp requirements.txt /deps.txt
COPY app /app/app
CMD ["sh", "/app/app/main.sh"]
"""


def test_copy_everything_first_reruns_the_dependency_step(mb, tmp_path):
    write(tmp_path, APP)
    (tmp_path / "Dockerfile").write_text(BAD_ORDER)
    first = mb("build", "-t", "bt-bad:1", str(tmp_path), check=True)
    assert steps(first.stderr)["RUN echo installing && cp requirements.txt /deps.txt"] == "DONE"
    again = mb("build", "-t", "bt-bad:1", str(tmp_path), check=True)
    assert set(steps(again.stderr).values()) == {"CACHED"}
    (tmp_path / "app" / "main.sh").write_text("echo v2\n")
    third = mb("build", "-t", "bt-bad:1", str(tmp_path), check=True)
    s = steps(third.stderr)
    assert s["WORKDIR /app"] == "CACHED"
    assert s["COPY . /app"] == "DONE"
    assert s["RUN echo installing && cp requirements.txt /deps.txt"] == "DONE"
    assert ran(third.stderr, "installing")
    assert image_sh(mb.root, "bt-bad:1", "sh /app/app/main.sh") == (0, "v2")


def test_dependencies_first_rebuild_only_the_app_layer(mb, tmp_path):
    write(tmp_path, APP)
    (tmp_path / "Dockerfile").write_text(GOOD_ORDER)
    mb("build", "-t", "bt-good:1", str(tmp_path), check=True)
    (tmp_path / "app" / "main.sh").write_text("echo v2\n")
    os.utime(tmp_path / "requirements.txt", (1, 1))  # an mtime alone changes nothing
    out = mb("build", "-t", "bt-good:1", str(tmp_path), check=True)
    s = steps(out.stderr)
    assert s["WORKDIR /app"] == s["COPY requirements.txt /app/"] == "CACHED"
    assert s["RUN echo installing && cp requirements.txt /deps.txt"] == "CACHED"
    assert s["COPY app /app/app"] == "DONE"
    assert not ran(out.stderr, "installing")
    assert image_sh(mb.root, "bt-good:1", "sh /app/app/main.sh; cat /deps.txt") == (0, "v2\ndep==1")
    # And as a user runs it.
    run = mb("run", "--rm", "--network", "none", "bt-good:1", check=True)
    assert run.stdout.strip() == "v2"


def test_fully_cached_rebuild_gives_the_same_image_and_no_cache_reruns(mb, tmp_path):
    write(tmp_path, APP)
    (tmp_path / "Dockerfile").write_text(GOOD_ORDER)
    a = mb("build", "-q", "-t", "bt-same:1", str(tmp_path), check=True).stdout.strip()
    b = mb("build", "-q", "-t", "bt-same:1", str(tmp_path), check=True).stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", a) and a == b
    out = mb("build", "--no-cache", "-t", "bt-same:1", str(tmp_path), check=True)
    assert cached_steps(out.stderr) == set()
    assert ran(out.stderr, "installing")


def test_dockerignore_shrinks_the_context_and_keeps_files_out(mb, tmp_path):
    write(tmp_path, APP)
    (tmp_path / "Dockerfile").write_text(BAD_ORDER)
    for rel, size in ((".git/objects/pack", 400_000), ("node_modules/dep/index.js", 300_000),
                      ("target/release/app", 200_000), ("dist/bundle.js", 100_000), ("debug.log", 50_000)):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)

    def context_bytes(output: str) -> str:
        return re.search(r"#\d+ transferring context: (\S+) [\d.]+s done", output).group(1)

    before = mb("build", "-t", "bt-ignore:1", str(tmp_path), check=True)
    assert context_bytes(before.stderr).endswith("MB")
    _, out = image_sh(mb.root, "bt-ignore:1", "ls -a /app")
    assert "node_modules" in out
    (tmp_path / ".dockerignore").write_text(".git\nnode_modules\ntarget\ndist\n*.log\n")
    after = mb("build", "-t", "bt-ignore:1", str(tmp_path), check=True)
    assert context_bytes(after.stderr).endswith("B") and not context_bytes(after.stderr).endswith("MB")
    code, out = image_sh(mb.root, "bt-ignore:1", "ls -a /app")
    assert code == 0
    for name in (".git", "node_modules", "target", "dist", "debug.log"):
        assert name not in out.split(), out
    assert "requirements.txt" in out and ".dockerignore" in out


SCRATCH_DOCKERFILE = (
        "FROM busybox AS builder\n"
        "RUN mkdir /out && cp /bin/busybox /out/ && echo built by stage > /out/msg\n"
        "FROM scratch\n"
        "COPY --from=builder /out/ /\n"
        'ENTRYPOINT ["/busybox"]\n'
        'CMD ["cat", "/msg"]\n')


def test_multi_stage_copy_into_scratch_runs(mb, tmp_path):
    (tmp_path / "Dockerfile").write_text(SCRATCH_DOCKERFILE)
    mb("build", "-t", "bt-scratch:1", str(tmp_path), check=True)
    from minibox.image.store import ImageStore

    img = ImageStore(mb.root).resolve("bt-scratch:1")
    assert len(img.diff_ids) == 1
    assert img.config["config"]["Entrypoint"] == ["/busybox"]
    assert image_run(mb.root, "bt-scratch:1") == (0, "built by stage")


def test_scratch_image_runs_with_minibox_run(mb, tmp_path):
    (tmp_path / "Dockerfile").write_text(SCRATCH_DOCKERFILE)
    mb("build", "-t", "bt-scratch-run:1", str(tmp_path), check=True)
    out = mb("run", "--rm", "--network", "none", "bt-scratch-run:1", check=True)
    assert out.stdout.strip() == "built by stage"


def test_failing_run_stops_tags_nothing_and_leaves_nothing(mb, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo before\nRUN echo oops; exit 3\nRUN echo never\n")
    out = mb("build", "-t", "bt-fail:1", str(tmp_path))
    assert out.returncode == 1
    assert 'Dockerfile:3: [3/4] RUN echo oops; exit 3: process "/bin/sh -c echo oops; exit 3" ' \
           "did not complete successfully: exit code: 3" in out.stderr
    assert ran(out.stderr, "oops") and not ran(out.stderr, "never")
    assert "bt-fail" not in mb("images").stdout
    assert os.listdir(os.path.join(mb.root, "build", "tmp")) == []
    assert mounts_under(os.path.join(mb.root, "build")) == []
    # The step before the failure was cached: the retry starts from there.
    again = mb("build", "-t", "bt-fail:1", str(tmp_path))
    assert steps(again.stderr)["RUN echo before"] == "CACHED"


@pytest.mark.parametrize("dockerfile,message", [
    ("FROM busybox\nRUNN true\n", "Dockerfile:2: unknown instruction: RUNN"),
    ("FROM busybox\nCOPY ../secret /x\n",
     "Dockerfile:2: COPY ../secret /x: COPY failed: forbidden path outside the build context: ../secret"),
    ("FROM bt-no-such-image:1\nRUN true\n", "Dockerfile:1: FROM bt-no-such-image:1: No such image"),
    ("FROM busybox\nCOPY missing.txt /x\n", "Dockerfile:2: COPY missing.txt /x: COPY failed: file not found"),
    ("FROM busybox\nRUN /no/such/binary\n", "Dockerfile:2: [2/2] RUN /no/such/binary: process"),
])
def test_bad_input_names_the_step(mb, tmp_path, dockerfile, message):
    (tmp_path / "Dockerfile").write_text(dockerfile)
    out = mb("build", "-t", "bt-bad-input:1", str(tmp_path))
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_deletions_become_whiteouts_and_config_is_recorded(mb, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\n"
        "ARG WHO=world\n"
        "ENV GREETING=hello\n"
        "RUN mkdir -p /data/keep /data/gone && touch /data/keep/a /data/gone/b && rm -f /etc/motd || true\n"
        "RUN rm -rf /data/gone && echo \"$GREETING $WHO\" > /data/keep/a\n"
        "USER nobody\n"
        "EXPOSE 8080\n"
        "LABEL org.example=yes\n")
    mb("build", "--build-arg", "WHO=minibox", "-t", "bt-wh:1", str(tmp_path), check=True)
    code, out = image_sh(mb.root, "bt-wh:1", "ls /data; cat /data/keep/a; id -u")
    assert (code, out) == (0, "keep\nhello minibox\n65534")
    from minibox.image.store import ImageStore

    img = ImageStore(mb.root).resolve("bt-wh:1")
    cfg = img.config["config"]
    assert cfg["User"] == "nobody" and cfg["ExposedPorts"] == {"8080/tcp": {}}
    assert cfg["Labels"] == {"org.example": "yes"} and "GREETING=hello" in cfg["Env"]
    created_by = [h.get("created_by", "") for h in img.config["history"]]
    assert any(c.startswith("RUN |1 WHO=minibox /bin/sh -c rm -rf /data/gone") for c in created_by)
    # The second RUN's layer records the deletion as an OCI whiteout.
    with tarfile.open(_layer_tar(mb.root, img.diff_ids[-1], tmp_path)) as tf:
        names = tf.getnames()
    assert "data/.wh.gone" in names, names
    assert not [n for n in names if n.startswith(("proc", "sys", "etc/hosts", "etc/resolv.conf"))]


def _layer_tar(root: str, diff_id: str, tmp_path) -> str:
    """Re-create the layer tar from the stored layer dir (what a save would write)."""
    from minibox.image.layerdiff import write_layer
    from minibox.image.store import ImageStore

    out = str(tmp_path / "layer-probe.tar")
    write_layer(ImageStore(root).layer_dir(diff_id), out)
    return out


def test_target_build_args_add_archive_and_prune(mb, tmp_path):
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "inside.txt").write_text("from the archive\n")
    with tarfile.open(tmp_path / "bundle.tar.gz", "w:gz") as tf:
        tf.add(payload / "inside.txt", arcname="pkg/inside.txt")
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE=busybox\n"
        "FROM ${BASE} AS first\n"
        "ARG MSG=default\n"
        "RUN echo $MSG > /msg\n"
        "ADD bundle.tar.gz /opt/\n"
        "FROM first AS second\n"
        "RUN echo second > /second\n")
    mb("build", "--target", "first", "--build-arg", "MSG=given", "-t", "bt-target:1", str(tmp_path), check=True)
    code, out = image_sh(mb.root, "bt-target:1", "cat /msg /opt/pkg/inside.txt; ls /second 2>&1")
    assert out.splitlines()[:2] == ["given", "from the archive"]
    assert code != 0 and "No such file" in out  # the stage after --target was not built
    assert "cache entries" in mb("builder", "du", check=True).stdout
    pruned = mb("builder", "prune", "-f", check=True)
    assert "Total reclaimed space:" in pruned.stdout
    again = mb("build", "--target", "first", "--build-arg", "MSG=given", "-t", "bt-target:1", str(tmp_path),
               check=True)
    assert cached_steps(again.stderr) == set()
    # Pruning never breaks an image: its layers are still there.
    assert image_sh(mb.root, "bt-target:1", "cat /msg")[1] == "given"


def test_copy_chown_chmod_workdir_and_symlinked_destination(mb, tmp_path):
    write(tmp_path, {"a.txt": "a\n", "dir/b.txt": "b\n"})
    os.symlink("a.txt", tmp_path / "link")
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN ln -s /../../../tmp/escape /etc/evil\n"
        "WORKDIR /w\n"
        "COPY --chown=nobody:nogroup --chmod=0640 a.txt rel/\n"
        "COPY dir link /w/multi/\n"
        "COPY a.txt /etc/evil/\n")
    mb("build", "-t", "bt-copy:1", str(tmp_path), check=True)
    code, out = image_sh(mb.root, "bt-copy:1",
                         "stat -c '%U:%G %a' /w/rel/a.txt; ls /w/multi; "
                         "test -L /w/multi/link || cat /w/multi/link; cat /tmp/escape/a.txt")
    lines = out.splitlines()
    assert lines[0] == "nobody:nogroup 640"
    # A directory source copies its contents; a top-level symlink source is followed.
    assert lines[1:4] == ["b.txt", "link", "a"]
    # The image's symlink was resolved inside the rootfs, never on the host.
    assert lines[4] == "a"
    assert code == 0
    assert not os.path.exists("/tmp/escape/a.txt")


def test_build_history_json_is_valid(mb, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCMD [\"echo\", \"hi\"]\n")
    image_id = mb("build", "-q", str(tmp_path), check=True).stdout.strip()
    from minibox.image.store import ImageStore

    img = ImageStore(mb.root).resolve(image_id)
    json.dumps(img.config)
    assert img.config["config"]["Cmd"] == ["echo", "hi"]
    assert img.config["history"][-1]["empty_layer"] is True


def test_interrupted_build_leaves_no_mount_or_workspace(mb, tmp_path):
    import signal
    import subprocess
    import time

    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo started; sleep 60\n")
    proc = mb.popen("build", "-t", "bt-interrupt:1", str(tmp_path), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        line = ""
        # Wait for the RUN's own output: its container is running now.
        while not ran(line.rstrip("\n"), "started") and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert ran(line.rstrip("\n"), "started")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert mounts_under(os.path.join(mb.root, "build")) == []
    assert os.listdir(os.path.join(mb.root, "build", "tmp")) == []
    assert "bt-interrupt" not in mb("images").stdout


def test_onbuild_triggers_and_ignored_dockerfile(mb, tmp_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "Dockerfile").write_text("FROM busybox\nONBUILD COPY . /src/\nONBUILD RUN ls /src > /listing\n")
    mb("build", "-t", "bt-onbuild-base:1", str(parent), check=True)
    child = tmp_path / "child"
    child.mkdir()
    (child / "app.txt").write_text("app\n")
    (child / "Dockerfile").write_text("FROM bt-onbuild-base:1\nRUN cat /listing\n")
    # Ignoring the Dockerfile and .dockerignore still builds; COPY just does not see them.
    (child / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    out = mb("build", "-t", "bt-onbuild-child:1", str(child), check=True)
    assert ran(out.stderr, "app.txt")
    assert image_sh(mb.root, "bt-onbuild-child:1", "ls -a /src") == (0, ".\n..\napp.txt")
