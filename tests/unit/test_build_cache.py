"""Cache keys and the on-disk cache index (minibox.build.cache)."""

import json
import os
import stat
import threading

from minibox.build.cache import CacheIndex, base_key, step_key
from minibox.build.context import scan
from minibox.build.dockerfile import parse
from minibox.build.stages import StageVars, plan


def chain_keys(dockerfile: str, context_dir: str, build_args=None, image_id="sha256:base"):
    """The key of every step of the last stage, computed as the builder does."""
    p = plan(parse(dockerfile), build_args)
    stage = p.stages[p.target]
    ctx = scan(context_dir)
    vars_ = StageVars(p, ["PATH=/bin"])
    key = base_key(image_id)
    keys = []
    for ins in stage.instructions:
        ins = vars_.expand(ins)
        sources = ctx.sources_digest(ins.args[:-1]) if ins.cmd in ("COPY", "ADD") else None
        args = vars_.args_in_effect() if ins.cmd == "RUN" else None
        key = step_key(key, ins.text(), args, sources)
        keys.append(key)
    return keys


def write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


APP = {"requirements.txt": "flask\n", "app/main.py": "print('v1')\n", "app/util.py": "u = 1\n"}

BAD_ORDER = """\
FROM python
WORKDIR /app
COPY . /app
RUN pip install -r requirements.txt
CMD ["python", "app/main.py"]
"""

GOOD_ORDER = """\
FROM python
WORKDIR /app
COPY requirements.txt /app/
RUN pip install -r requirements.txt
COPY app /app/app
CMD ["python", "app/main.py"]
"""


def test_changing_an_app_file_with_copy_all_first_reruns_the_dependency_step(tmp_path):
    write(tmp_path, APP)
    before = chain_keys(BAD_ORDER, str(tmp_path))
    (tmp_path / "app" / "main.py").write_text("print('v2')\n")
    after = chain_keys(BAD_ORDER, str(tmp_path))
    assert before[0] == after[0]                    # WORKDIR
    assert before[1] != after[1]                    # COPY . /app
    assert before[2] != after[2]                    # RUN pip install: reruns
    assert before[3] != after[3]


def test_with_dependencies_first_only_the_app_layer_changes(tmp_path):
    write(tmp_path, APP)
    before = chain_keys(GOOD_ORDER, str(tmp_path))
    (tmp_path / "app" / "main.py").write_text("print('v2')\n")
    after = chain_keys(GOOD_ORDER, str(tmp_path))
    assert before[:3] == after[:3]                  # WORKDIR, COPY requirements, RUN pip: cached
    assert before[3] != after[3]                    # COPY app
    assert before[4] != after[4]                    # everything after it


def test_keys_ignore_mtimes_and_follow_modes(tmp_path):
    write(tmp_path, APP)
    k0 = chain_keys(GOOD_ORDER, str(tmp_path))
    os.utime(tmp_path / "app" / "main.py", (12345, 12345))
    assert chain_keys(GOOD_ORDER, str(tmp_path)) == k0
    os.chmod(tmp_path / "app" / "main.py", stat.S_IRWXU)
    k1 = chain_keys(GOOD_ORDER, str(tmp_path))
    assert k1[:3] == k0[:3] and k1[3] != k0[3]


def test_build_args_enter_run_keys_only_where_declared(tmp_path):
    df = "FROM busybox\nRUN echo one\nARG VERSION=1\nRUN echo two\nWORKDIR /w\n"
    a = chain_keys(df, str(tmp_path))
    b = chain_keys(df, str(tmp_path), {"VERSION": "2"})
    assert a[0] == b[0]           # RUN before the ARG: same
    assert a[1] == b[1]           # the ARG instruction text itself is the same ...
    assert a[2] != b[2]           # ... but the RUN after it sees VERSION=2
    assert a[3] != b[3]
    # An undeclared build-arg changes nothing.
    assert chain_keys(df, str(tmp_path), {"OTHER": "x"}) == a


def test_substituted_text_is_what_counts(tmp_path):
    df = "FROM busybox\nARG DIR=/a\nWORKDIR $DIR\n"
    assert chain_keys(df, str(tmp_path))[1] != chain_keys(df, str(tmp_path), {"DIR": "/b"})[1]
    same_a = "FROM busybox\nWORKDIR /a\n"
    same_b = "FROM busybox\nENV D=/a\nWORKDIR $D\n"
    # Same instruction but a different parent chain: different keys.
    assert chain_keys(same_a, str(tmp_path))[-1] != chain_keys(same_b, str(tmp_path))[-1]


def test_base_image_is_the_root_of_the_chain(tmp_path):
    a = chain_keys(GOOD_ORDER.replace("COPY", "#"), str(tmp_path), image_id="sha256:aaa")
    b = chain_keys(GOOD_ORDER.replace("COPY", "#"), str(tmp_path), image_id="sha256:bbb")
    assert all(x != y for x, y in zip(a, b))
    assert base_key(None) == base_key(None) != base_key("sha256:aaa")


def test_step_key_is_deterministic_and_sensitive():
    k = step_key("p", "RUN x", {"A": "1", "B": "2"}, "sha256:s")
    assert k == step_key("p", "RUN x", {"B": "2", "A": "1"}, "sha256:s")
    assert k.startswith("sha256:") and len(k) == 71
    for other in (step_key("q", "RUN x", {"A": "1", "B": "2"}, "sha256:s"),
                  step_key("p", "RUN y", {"A": "1", "B": "2"}, "sha256:s"),
                  step_key("p", "RUN x", {"A": "1"}, "sha256:s"),
                  step_key("p", "RUN x", {"A": "1", "B": "2"}, "sha256:t"),
                  step_key("p", "RUN x", {"A": "1", "B": "2"}, None)):
        assert other != k


def test_index_put_get_persist_and_prune(tmp_path):
    idx = CacheIndex(str(tmp_path))
    assert idx.get("k1") is None
    idx.put("k1", "sha256:layer1", {"Env": ["A=1"]}, "RUN x", size=10, parent="k0")
    idx.put("k2", None, {"WorkingDir": "/app"}, "WORKDIR /app", parent="k1")
    again = CacheIndex(str(tmp_path))
    assert again.get("k1")["layer"] == "sha256:layer1"
    assert again.get("k2")["config"] == {"WorkingDir": "/app"}
    assert again.layers() == {"sha256:layer1"}
    assert stat.S_IMODE(os.stat(tmp_path / "build").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "build" / "cache.json").st_mode) == 0o600
    assert not [n for n in os.listdir(tmp_path / "build") if ".tmp" in n]

    removed = again.prune(lambda key, e: e["layer"] is None)
    assert list(removed) == ["k1"]
    assert idx.get("k1") is None and idx.get("k2") is not None
    assert set(idx.prune()) == {"k2"}
    assert idx.load() == {}


def test_touch_updates_last_used(tmp_path):
    idx = CacheIndex(str(tmp_path))
    e = idx.put("k", None)
    data = json.loads((tmp_path / "build" / "cache.json").read_text())
    data["entries"]["k"]["last_used"] = 1.0
    (tmp_path / "build" / "cache.json").write_text(json.dumps(data))
    idx.touch(["k", "missing"])
    assert idx.get("k")["last_used"] >= e["created"]


def test_corrupt_index_is_an_empty_cache(tmp_path):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "cache.json").write_text("{not json")
    idx = CacheIndex(str(tmp_path))
    assert idx.load() == {}
    idx.put("k", None)
    assert set(idx.load()) == {"k"}


def test_concurrent_writers_lose_nothing(tmp_path):
    def writer(n):
        idx = CacheIndex(str(tmp_path))
        for i in range(20):
            idx.put(f"k{n}-{i}", None)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(CacheIndex(str(tmp_path)).load()) == 80
