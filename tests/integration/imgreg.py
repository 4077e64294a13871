"""Test helpers for registry pulls: a real docker-registry on loopback, OCI layouts built by hand.

The registry is Debian's ``docker-registry`` (the reference distribution
server) on 127.0.0.1:<free port> with a temp storage dir; images reach it
with ``skopeo copy`` from OCI layouts written here, so every byte minibox
pulls was produced and served by independent tools.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request

REGISTRY_BIN = "/usr/bin/docker-registry"


def missing_tools() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in (REGISTRY_BIN, shutil.which("skopeo")):
        if not tool or not os.access(tool, os.X_OK):
            return "docker-registry and skopeo are needed (apt-get install docker-registry skopeo)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """A docker-registry process; ``stop()`` kills it (the fixture always calls it)."""

    def __init__(self, workdir: str, users: dict | None = None, tls: bool = False):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = os.path.join(workdir, "storage")
        os.makedirs(self.storage)
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": self.storage}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "minibox-test"},
        }
        self.scheme = "https" if tls else "http"
        if tls:
            cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                            "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
            config["http"]["tls"] = {"certificate": cert, "key": key}
        if users:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt
            htpasswd = os.path.join(workdir, "htpasswd")
            with open(htpasswd, "w") as f:
                f.writelines(f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n" for user, password in users.items())
            config["auth"] = {"htpasswd": {"realm": "minibox-test", "path": htpasswd}}
        self.config = os.path.join(workdir, "config.yml")
        with open(self.config, "w") as f:
            json.dump(config, f)  # JSON is YAML
        self.log = open(os.path.join(workdir, "registry.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", self.config], stdout=self.log, stderr=self.log)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited {self.proc.returncode}")
            try:
                import ssl

                ctx = ssl.create_default_context()
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
                urllib.request.urlopen(f"{self.scheme}://{self.host}/v2/", timeout=1, context=ctx).close()
                return
            except urllib.error.HTTPError:
                return  # 401: up, with auth
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def blob_file(self, digest: str) -> str:
        h = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", h[:2], h, "data")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def tar_layer(*entries) -> bytes:
    """entries: (name, kind, data): 'f' file, 'd' dir, 's' symlink (data = target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_600_000_000
            if kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif kind == "s":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o755
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class OCILayout:
    """An OCI image layout dir written by hand (what skopeo reads with ``oci:DIR:TAG``)."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
        self._save()

    def _save(self) -> None:
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(self.index, f)

    def blob(self, data: bytes, media_type: str) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.path, "blobs", "sha256", digest[7:]), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, layers: list[bytes], arch: str = "amd64", cmd=("sh",), compress: bool = True) -> dict:
        """A manifest of ``layers`` (uncompressed tars); returns its descriptor with platform."""
        descs = []
        for raw in layers:
            if compress:
                descs.append(self.blob(gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"))
            else:
                descs.append(self.blob(raw, "application/vnd.oci.image.layer.v1.tar"))
        config = {
            "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": list(cmd), "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(r).hexdigest() for r in layers]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))],
        }
        cdesc = self.blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": cdesc, "layers": descs}
        desc = self.blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
        desc["platform"] = {"architecture": arch, "os": "linux"}
        return desc

    def multi(self, manifests: list[dict]) -> dict:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
        return self.blob(json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json")

    def tag(self, desc: dict, name: str) -> None:
        entry = {k: v for k, v in desc.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": name}
        self.index["manifests"].append(entry)
        self._save()


def push(layout: str, tag: str, dest: str, creds: str | None = None) -> None:
    """``skopeo copy --all oci:LAYOUT:TAG docker://DEST`` (plain HTTP to loopback)."""
    cmd = ["skopeo", "copy", "--all", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{dest}"]
    if creds:
        cmd[3:3] = ["--dest-creds", creds]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"skopeo copy failed: {r.stderr.strip()}")


def store_state(root: str) -> dict:
    """Every path under the image store (lock files aside) with its content hash."""
    out = {}
    top = os.path.join(root, "image")
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if n.endswith(".lock") or n == "lock":
                continue
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    out[p] = hashlib.sha256(f.read()).hexdigest()
            else:
                out[p] = os.readlink(p) if os.path.islink(p) else None
    return out
