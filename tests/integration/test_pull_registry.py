"""Pulls from a real registry (Debian's docker-registry on loopback), fed by skopeo.

Covers: multi-layer images with whiteouts and an opaque dir, a multi-arch
index whose first entry is another platform, pull by digest, layer sharing,
basic auth with login/logout, the bearer-token flow (a token service and a
checking front the test runs on loopback, with blobs redirected to another
host:port), docker-archive/OCI interop with skopeo, and bad input that must
leave the store exactly as it was.
"""

import hashlib
import http.client
import http.server
import json
import os
import shutil
import stat
import subprocess
import threading
import urllib.parse

import pytest
from imgreg import (
    OCILayout,
    Registry,
    free_port,
    missing_tools,
    push,
    store_state,
    tar_layer,
)

from minibox.image.overlay import mount_overlay, unmount_overlay
from minibox.image.store import ImageStore
from conftest import minibox_command  # the installed console script, as a user runs it

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
pytestmark = [pytest.mark.root, pytest.mark.skipif(bool(missing_tools()), reason=missing_tools() or "")]

BASE = tar_layer(("bin", "d", b""), ("bin/tool", "f", b"#!tool"), ("gone", "f", b"g"), ("dir", "d", b""),
                 ("dir/old", "f", b"o"), ("sub", "d", b""), ("sub/a", "f", b"a"), ("sub/b", "f", b"b"))
MID = tar_layer(("etc", "d", b""), ("etc/mid", "f", b"m"), ("sub/c", "f", b"c"))
TOP = tar_layer((".wh.gone", "f", b""), ("dir", "d", b""), ("dir/.wh..wh..opq", "f", b""),
                ("dir/new", "f", b"n"), ("sub/.wh.a", "f", b""))


def minibox(root, *args, input=None, env=None):
    return subprocess.run([*minibox_command(), "--root", str(root), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, input=input, env=env, check=False)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A plain registry holding test/multi:1 (index: arm64 first, then amd64), test/base:1,
    and two images whose blobs the bad-input tests corrupt."""
    work = tmp_path_factory.mktemp("registry")
    reg = Registry(str(work))
    try:
        lay = OCILayout(str(work / "oci"))
        arm = lay.image([tar_layer(("arm-only", "f", b"arm"))], arch="arm64")
        amd = lay.image([BASE, MID, TOP])
        lay.tag(lay.multi([arm, amd]), "multi")
        lay.tag(lay.image([BASE]), "base")
        reg.corrupt = lay.image([tar_layer(("c", "f", os.urandom(4096)))])
        lay.tag(reg.corrupt, "corrupt")
        reg.truncated = lay.image([tar_layer(("t", "f", os.urandom(65536)))])
        lay.tag(reg.truncated, "truncated")
        big = [tar_layer((f"big{i}", "f", os.urandom(1 << 20))) for i in range(3)]
        lay.tag(lay.image([BASE, *big]), "big")
        reg.layout = str(work / "oci")
        for tag, dest in (("multi", "test/multi:1"), ("base", "test/base:1"), ("corrupt", "test/corrupt:1"),
                          ("truncated", "test/truncated:1"), ("big", "test/big:1")):
            push(reg.layout, tag, f"{reg.host}/{dest}")
        yield reg
    finally:
        reg.stop()


def _layer_digest(lay_path, manifest_desc, i=0):
    with open(os.path.join(lay_path, "blobs/sha256", manifest_desc["digest"][7:])) as f:
        return json.load(f)["layers"][i]["digest"]


def test_pull_multiarch_picks_host_platform_and_honours_whiteouts(registry, tmp_path):
    root = tmp_path / "root"
    r = minibox(root, "pull", f"{registry.host}/test/multi:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "1: Pulling from test/multi"
    assert "Status: Downloaded newer image for" in r.stdout
    store = ImageStore(str(root))
    img = store.resolve(f"{registry.host}/test/multi:1")
    assert img.config["architecture"] == "amd64"
    assert img.diff_ids == ["sha256:" + hashlib.sha256(raw).hexdigest() for raw in (BASE, MID, TOP)]
    assert any(d.startswith(f"{registry.host}/test/multi@sha256:") for d in img.repo_digests)
    c = tmp_path / "c"
    dirs = [str(c / d) for d in ("diff", "work", "merged")]
    for d in dirs:
        os.makedirs(d)
    mount_overlay(store, img, *dirs)
    try:
        merged = dirs[2]
        assert sorted(os.listdir(merged)) == ["bin", "dir", "etc", "sub"]
        assert os.listdir(os.path.join(merged, "dir")) == ["new"]
        assert sorted(os.listdir(os.path.join(merged, "sub"))) == ["b", "c"]
    finally:
        unmount_overlay(dirs[2])
    for sub in ("", "layers", "blobs", "l"):
        assert stat.S_IMODE(os.stat(os.path.join(root, "image", sub)).st_mode) == 0o700
    assert os.listdir(os.path.join(root, "image", "tmp")) == []


def test_second_pull_and_shared_base(registry, tmp_path):
    root = tmp_path / "root"
    assert minibox(root, "pull", "-q", f"{registry.host}/test/multi:1").returncode == 0
    r = minibox(root, "pull", f"{registry.host}/test/multi:1")
    assert r.returncode == 0 and "Status: Image is up to date for" in r.stdout
    r = minibox(root, "pull", f"{registry.host}/test/base:1")
    assert r.returncode == 0, r.stderr
    assert "Already exists" in r.stdout
    store = ImageStore(str(root))
    multi = store.resolve(f"{registry.host}/test/multi:1")
    base = store.resolve(f"{registry.host}/test/base:1")
    assert base.layer_dirs()[0] == multi.layer_dirs()[0]
    assert len(os.listdir(store.path("layers"))) == 3
    du = store.disk_usage()
    assert du["shared_size"] == store.layer_info(base.diff_ids[0])["size"] > 0


def test_pull_by_digest_and_platform(registry, tmp_path):
    root = tmp_path / "root"
    r = minibox(root, "pull", "--platform", "linux/arm64", f"{registry.host}/test/multi:1")
    assert r.returncode == 0, r.stderr
    img = ImageStore(str(root)).resolve(f"{registry.host}/test/multi:1")
    assert img.config["architecture"] == "arm64"
    digest = next(d for d in img.repo_digests if "@" in d).split("@")[1]
    r = minibox(root, "pull", f"{registry.host}/test/base@{_manifest_digest(registry, 'test/base', '1')}")
    assert r.returncode == 0, r.stderr
    r = minibox(root, "pull", "--platform", "linux/s390x", f"{registry.host}/test/multi@{digest}")
    assert r.returncode == 125 and "no matching manifest for linux/s390x" in r.stderr


def _manifest_digest(reg, repo, tag):
    conn = http.client.HTTPConnection(reg.host)
    conn.request("HEAD", f"/v2/{repo}/manifests/{tag}",
                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    resp = conn.getresponse()
    digest = resp.getheader("Docker-Content-Digest")
    conn.close()
    return digest


@pytest.mark.parametrize("case", ["unknown-tag", "unknown-repo", "corrupt", "truncated", "unreachable", "platform"])
def test_bad_pulls_leave_the_store_unchanged(registry, tmp_path, case):
    root = tmp_path / "root"
    assert minibox(root, "pull", "-q", f"{registry.host}/test/base:1").returncode == 0
    before = store_state(str(root))
    if case == "corrupt":
        path = registry.blob_file(_layer_digest(registry.layout, registry.corrupt))
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            data[len(data) // 2] ^= 0xFF
            f.seek(0)
            f.write(data)
    if case == "truncated":
        path = registry.blob_file(_layer_digest(registry.layout, registry.truncated))
        os.truncate(path, os.path.getsize(path) // 2)
    name, want = {
        "unknown-tag": (f"{registry.host}/test/base:nope", "not found"),
        "unknown-repo": (f"{registry.host}/test/none:1", "not found"),
        "corrupt": (f"{registry.host}/test/corrupt:1", "layer sha256:"),
        "truncated": (f"{registry.host}/test/truncated:1", "layer sha256:"),
        "unreachable": (f"127.0.0.1:{free_port()}/test/base:1", "cannot reach registry"),
        "platform": (f"{registry.host}/test/multi:1", "no matching manifest"),
    }[case]
    args = ["--platform", "linux/ppc64le"] if case == "platform" else []
    r = minibox(root, "pull", *args, name)
    assert r.returncode == 125, r.stdout + r.stderr
    assert want in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert name.split("/", 1)[1].split(":")[0] in r.stderr
    assert store_state(str(root)) == before


def test_basic_auth_login_logout(tmp_path_factory, tmp_path):
    work = tmp_path_factory.mktemp("authreg")
    reg = Registry(str(work), users={"alice": "s3cret"})
    try:
        lay = OCILayout(str(work / "oci"))
        lay.tag(lay.image([BASE]), "p")
        push(str(work / "oci"), "p", f"{reg.host}/private/img:1", creds="alice:s3cret")
        root = tmp_path / "root"
        name = f"{reg.host}/private/img:1"
        r = minibox(root, "pull", name)
        assert r.returncode == 125 and "unauthorized" in r.stderr and "private/img" in r.stderr
        r = minibox(root, "login", "-u", "alice", "--password-stdin", reg.host, input="wrong\n")
        assert r.returncode == 125 and "unauthorized" in r.stderr
        assert not os.path.exists(root / "image" / "auth.json")
        r = minibox(root, "login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n")
        assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
        assert stat.S_IMODE(os.stat(root / "image" / "auth.json").st_mode) == 0o600
        r = minibox(root, "pull", name)
        assert r.returncode == 0, r.stderr
        r = minibox(root, "logout", reg.host)
        assert r.returncode == 0 and "Removing login credentials" in r.stdout
        assert minibox(root, "pull", name.replace(":1", ":2")).returncode == 125
    finally:
        reg.stop()


class _TokenFront(http.server.ThreadingHTTPServer):
    """A token service plus a front that demands its bearer token, then forwards to
    the plain registry; blob GETs are answered with a redirect to the registry itself."""

    daemon_threads = True


def _front_handler(upstream: str, realm: str, state: dict):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/token":
                q = urllib.parse.parse_qs(url.query)
                state["token_requests"].append(q)
                body = json.dumps({"token": state["token"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if self.headers.get("Authorization") != f"Bearer {state['token']}":
                repo = url.path.split("/")[2:4]
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="front",'
                                 f'scope="repository:{"/".join(repo)}:pull"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if "/blobs/" in url.path:
                state["redirects"] += 1
                self.send_response(307)
                self.send_header("Location", f"http://{upstream}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            conn = http.client.HTTPConnection(upstream, timeout=30)
            conn.request("GET", self.path, headers={"Accept": self.headers.get("Accept", "*/*")})
            resp = conn.getresponse()
            body = resp.read()
            self.send_response(resp.status)
            for k in ("Content-Type", "Docker-Content-Digest"):
                if resp.getheader(k):
                    self.send_header(k, resp.getheader(k))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            conn.close()

    return Handler


def test_bearer_token_flow_and_blob_redirects(registry, tmp_path):
    port = free_port()
    state = {"token": os.urandom(8).hex(), "token_requests": [], "redirects": 0}
    server = _TokenFront(("127.0.0.1", port), _front_handler(registry.host, f"http://127.0.0.1:{port}/token", state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        root = tmp_path / "root"
        r = minibox(root, "pull", f"127.0.0.1:{port}/test/multi:1")
        assert r.returncode == 0, r.stderr
        assert state["token_requests"] and state["token_requests"][0]["scope"] == ["repository:test/multi:pull"]
        assert state["token_requests"][0]["service"] == ["front"]
        assert state["redirects"] >= 4  # config + 3 layers, each fetched from the redirect target
        img = ImageStore(str(root)).resolve(f"127.0.0.1:{port}/test/multi:1")
        assert len(img.diff_ids) == 3
    finally:
        server.shutdown()
        server.server_close()


def test_skopeo_docker_archive_loads_to_the_same_image(registry, tmp_path):
    root = tmp_path / "root"
    assert minibox(root, "pull", "-q", f"{registry.host}/test/multi:1").returncode == 0
    pulled = ImageStore(str(root)).resolve(f"{registry.host}/test/multi:1")
    archive = tmp_path / "multi.tar"
    r = subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{registry.host}/test/multi:1",
                        f"docker-archive:{archive}:test/multi:1"], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    other = tmp_path / "other"
    r = minibox(other, "load", "-i", str(archive))
    assert r.returncode == 0 and "Loaded image: test/multi:1" in r.stdout, r.stderr
    loaded = ImageStore(str(other)).resolve("test/multi:1")
    assert loaded.diff_ids == pulled.diff_ids and loaded.id == pulled.id
    # And back: our save is readable by skopeo as a docker archive and as an OCI archive.
    out = tmp_path / "saved.tar"
    assert minibox(other, "save", "-o", str(out), "test/multi:1").returncode == 0
    for ref in (f"docker-archive:{out}", f"oci-archive:{out}:1"):
        r = subprocess.run(["skopeo", "inspect", "--raw", ref], capture_output=True, text=True, check=False)
        assert r.returncode == 0, (ref, r.stderr)
    r = subprocess.run(["skopeo", "inspect", "--config", f"docker-archive:{out}"], capture_output=True, text=True,
                       check=False)
    assert json.loads(r.stdout)["rootfs"]["diff_ids"] == pulled.diff_ids


def test_load_oci_layout_dir_made_by_skopeo(registry, tmp_path):
    layout = tmp_path / "layout"
    r = subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{registry.host}/test/base:1",
                        f"oci:{layout}:base"], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    root = tmp_path / "root"
    r = minibox(root, "load", "-i", str(layout))
    assert r.returncode == 0 and r.stdout.startswith("Loaded image ID: sha256:"), r.stdout + r.stderr
    img = ImageStore(str(root)).resolve(r.stdout.split()[-1])
    assert img.diff_ids == ["sha256:" + hashlib.sha256(BASE).hexdigest()]


def _run_unavailable():
    try:
        import minibox.cgroups  # noqa: F401 - the runtime needs it to start a container
    except ImportError:
        return "minibox run needs the cgroups driver (minibox.cgroups), not in this build"
    return None


@pytest.mark.skipif(bool(_run_unavailable()), reason=_run_unavailable() or "")
def test_pull_then_run_shows_the_merged_filesystem(registry, tmp_path):
    rootfs = tmp_path / "busybox.tar"
    r = subprocess.run(["sh", os.path.join(REPO, "rootfs", "build.sh"), str(rootfs)], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot build the busybox rootfs: {r.stderr.strip()}")
    lay = OCILayout(str(tmp_path / "oci"))
    top = tar_layer(("var", "d", b""), ("var/www", "d", b""), ("var/www/.wh.index.html", "f", b""),
                    ("hello", "f", b"from the top layer\n"))
    with open(rootfs, "rb") as f:
        lay.tag(lay.image([f.read(), top], cmd=("sh",)), "run")
    push(str(tmp_path / "oci"), "run", f"{registry.host}/test/run:1")
    root = tmp_path / "root"
    assert minibox(root, "pull", "-q", f"{registry.host}/test/run:1").returncode == 0
    r = minibox(root, "run", "--rm", "--network", "none", f"{registry.host}/test/run:1",
                "sh", "-c", "cat /hello; ls -A /var/www; echo end")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from the top layer\nend\n"


def _fault_handler(upstream: str, mode: str):
    """Forwards to the registry, except for the fault under test."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, status, body=b"", ctype="application/json", chunks=1, delay=0.0):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            step = max(1, len(body) // chunks)
            try:
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    if delay:
                        import time

                        time.sleep(delay)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client was killed: that is the test

        def do_GET(self):
            if "/manifests/" in self.path and mode == "big-manifest":
                self._send(200, b'{"schemaVersion": 2, "pad": "' + b"x" * (5 << 20) + b'"}',
                           "application/vnd.oci.image.manifest.v1+json")
                return
            if "/manifests/" in self.path and mode == "schema1":
                self._send(200, json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode(),
                           "application/vnd.docker.distribution.manifest.v1+prettyjws")
                return
            conn = http.client.HTTPConnection(upstream, timeout=30)
            conn.request("GET", self.path, headers={"Accept": self.headers.get("Accept", "*/*")})
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            slow = mode == "slow" and "/blobs/" in self.path and len(body) > 10000
            self._send(resp.status, body, resp.getheader("Content-Type") or "application/octet-stream",
                       chunks=200 if slow else 1, delay=0.05 if slow else 0.0)

    return Handler


@pytest.fixture
def fault_front(registry):
    servers = []

    def start(mode):
        port = free_port()
        server = _TokenFront(("127.0.0.1", port), _fault_handler(registry.host, mode))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize("mode,want", [("big-manifest", "exceeds the 4194304-byte limit"),
                                       ("schema1", "unsupported manifest media type")])
def test_bad_manifests_change_nothing(fault_front, tmp_path, mode, want):
    host = fault_front(mode)
    root = tmp_path / "root"
    r = minibox(root, "pull", f"{host}/test/base:1")
    assert r.returncode == 125 and want in r.stderr and "test/base:1" in r.stderr, r.stderr
    assert not os.path.exists(root / "image" / "repositories.json")
    assert not os.path.exists(root / "image" / "layers") or os.listdir(root / "image" / "layers") == []


def test_sigkill_during_pull_leaves_a_consistent_store(fault_front, tmp_path):
    import signal
    import time

    host = fault_front("slow")
    root = tmp_path / "root"
    name = f"{host}/test/big:1"
    proc = subprocess.Popen([*minibox_command(), "--root", str(root), "pull", name], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        tmp = root / "image" / "tmp"
        while time.monotonic() < deadline and not (tmp.exists() and os.listdir(tmp)):
            time.sleep(0.02)
        assert tmp.exists() and os.listdir(tmp), "the pull never started unpacking"
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    store = ImageStore(str(root))
    with pytest.raises(Exception, match="No such image"):
        store.resolve(name)
    for h in os.listdir(store.path("layers")):  # only complete, verified layers are ever visible
        assert os.path.isfile(store.path("layers", h, "layer.json"))
    r = minibox(root, "pull", "-q", name)
    assert r.returncode == 0, r.stderr
    assert os.listdir(store.path("tmp")) == []  # the dead pull's temp dirs are reaped
    assert len(store.resolve(name).layer_dirs()) == 4


def test_ensure_image_pulls_only_when_missing(registry, tmp_path):
    import io

    from minibox.errors import NotFound
    from minibox.image.pull import ensure_image

    store = ImageStore(str(tmp_path / "root"))
    name = f"{registry.host}/test/base:1"
    with pytest.raises(NotFound):
        ensure_image(store, name, pull_policy="never")
    out = io.StringIO()
    img = ensure_image(store, name, out=out)
    text = out.getvalue()
    assert text.startswith(f"Unable to find image '{name}' locally\n") and "Pull complete" in text
    assert text.splitlines()[-1].startswith("Status: ")  # pull's closing reference line is not shown by run
    out = io.StringIO()
    assert ensure_image(store, name, out=out).id == img.id and out.getvalue() == ""


def test_concurrent_pulls_share_one_copy_of_each_layer(registry, tmp_path):
    root = tmp_path / "root"
    names = [f"{registry.host}/test/multi:1", f"{registry.host}/test/multi:1", f"{registry.host}/test/base:1"]
    procs = [subprocess.Popen([*minibox_command(), "--root", str(root), "pull", "-q", n], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in names]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    store = ImageStore(str(root))
    assert len(os.listdir(store.path("layers"))) == 3  # BASE shared by both images, MID, TOP
    assert len(os.listdir(store.path("l"))) == 3
    assert os.listdir(store.path("tmp")) == []
    assert store.resolve(names[2]).layer_dirs()[0] == store.resolve(names[0]).layer_dirs()[0]


def test_pulled_image_saves_and_loads_to_the_same_image(registry, tmp_path):
    root, other = tmp_path / "root", tmp_path / "other"
    name = f"{registry.host}/test/multi:1"
    assert minibox(root, "pull", "-q", name).returncode == 0
    out = tmp_path / "multi.tar"
    r = minibox(root, "save", "-o", str(out), name)
    assert r.returncode == 0, r.stderr
    r = minibox(other, "load", "-i", str(out))
    assert r.returncode == 0 and r.stdout == f"Loaded image: {name}\n", r.stdout + r.stderr
    a, b = ImageStore(str(root)).resolve(name), ImageStore(str(other)).resolve(name)
    assert a.id == b.id and a.diff_ids == b.diff_ids
    r = minibox(other, "history", name)
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == [b.short_id, "<missing>", "<missing>"]
    assert "layer 2" in r.stdout.splitlines()[1]


def test_loopback_registry_over_tls_with_a_self_signed_certificate(tmp_path_factory, tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a certificate")
    work = tmp_path_factory.mktemp("tlsreg")
    reg = Registry(str(work), tls=True)
    try:
        lay = OCILayout(str(work / "oci"))
        lay.tag(lay.image([BASE]), "t")
        push(str(work / "oci"), "t", f"{reg.host}/tls/img:1")
        r = minibox(tmp_path / "root", "pull", "-q", f"{reg.host}/tls/img:1")
        assert r.returncode == 0, r.stderr
    finally:
        reg.stop()
