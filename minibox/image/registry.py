"""A client of the OCI distribution API (``/v2/``): manifests, blobs, auth.

- HTTPS everywhere, plain HTTP only for loopback registries (tried first
  there, then HTTPS) or when the caller opts in (``insecure=True``), as
  docker treats 127.0.0.0/8 as an insecure registry by default.
- 401 answers are followed: ``Bearer`` (anonymous or with the saved basic
  credentials, docker's token flow) or ``Basic``.
- ``Authorization`` is never carried over a redirect (blob storage on another
  host, S3-style signed URLs) and never sent in clear text off loopback.
- Manifests are size-capped and verified against their digest; blobs are
  verified by the caller while they stream.
"""

import base64
import http.client
import ipaddress
import json
import os
import urllib.error
import urllib.parse
import urllib.request

from minibox.errors import MiniboxError, NotFound

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
LAYER_TYPES = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
MAX_MANIFEST = 4 << 20
MAX_CONFIG = 8 << 20
DOCKER_HUB_API = "registry-1.docker.io"
_UA = "minibox/0.1 (+docker-compatible)"


class RegistryError(MiniboxError):
    """A registry answered with an error, or could not be reached."""


class AuthError(RegistryError):
    """401/403 from a registry (or its token service)."""


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 / ::1 addresses (with or without a port)."""
    if host.startswith("["):
        name = host[1:host.index("]")]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# --- credentials (docker's config.json "auths" shape, file mode 0600) -------------
def auth_file(root: str) -> str:
    return os.environ.get("MINIBOX_AUTH_FILE") or os.path.join(root, "image", "auth.json")


def load_credentials(root: str, host: str) -> tuple[str, str] | None:
    from minibox.image import fsutil

    data = fsutil.read_json(auth_file(root), {}) or {}
    entry = (data.get("auths") or {}).get(host)
    if not entry or "auth" not in entry:
        return None
    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    return user, password


def save_credentials(root: str, host: str, user: str | None, password: str | None) -> None:
    """Store (or, with ``user=None``, remove) the credentials of ``host`` atomically, 0600."""
    from minibox.image import fsutil

    path = auth_file(root)
    fsutil.makedirs(os.path.dirname(path))
    with fsutil.FileLock(path + ".lock"):
        data = fsutil.read_json(path, {}) or {}
        auths = data.setdefault("auths", {})
        if user is None:
            auths.pop(host, None)
        else:
            auths[host] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        fsutil.atomic_write_json(path, data, mode=0o600)


# --- HTTP -------------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by hand, so headers are chosen per hop."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _opener(verify_tls: bool = True):
    handlers = [_NoRedirect()]
    if not verify_tls:
        import ssl

        # docker's "insecure registry": TLS if offered, certificate not checked.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    return urllib.request.build_opener(*handlers)


class Client:
    """One registry host; keeps the tokens it was given for the session."""

    def __init__(self, host: str, root: str | None = None, insecure: bool = False,
                 credentials: tuple[str, str] | None = None, timeout: float = 60.0):
        self.host = host
        self.api_host = DOCKER_HUB_API if host == "docker.io" else host
        self.loopback = is_loopback(self.api_host)
        self.insecure = insecure
        self.timeout = timeout
        self.credentials = credentials if credentials is not None else (
            load_credentials(root, host) if root else None)
        # As docker: loopback registries and opted-in ones are "insecure": HTTPS
        # without certificate checks, then plain HTTP. The scheme that answers
        # first is kept for the rest of the session (one failed handshake per pull).
        self.schemes = ["https", "http"] if (self.loopback or insecure) else ["https"]
        self._auth: dict[str, str] = {}  # scope -> Authorization header value
        self._opener = _opener(verify_tls=not (self.loopback or insecure))

    # -- low level --
    def _url(self, scheme: str, path: str) -> str:
        return f"{scheme}://{self.api_host}{path}"

    def _open(self, method: str, url: str, headers: dict, auth: str | None):
        req = urllib.request.Request(url, method=method, headers=dict(headers, **{"User-Agent": _UA}))
        if auth:
            # Unredirected: never forwarded by urllib to another URL.
            req.add_unredirected_header("Authorization", auth)
        try:
            return self._opener.open(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            return exc

    def request(self, method: str, path: str, scope: str, headers: dict | None = None, what: str = ""):
        """Send a request, following auth challenges and redirects; returns the response.

        Error answers raise RegistryError/AuthError/NotFound naming ``what``.
        """
        headers = headers or {}
        last_exc = None
        for i, scheme in enumerate(self.schemes):
            try:
                resp = self._request(method, self._url(scheme, path), scope, headers, what)
                self.schemes = [scheme]
                return resp
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                if isinstance(exc, MiniboxError):
                    raise
                last_exc = exc
                if i + 1 < len(self.schemes):
                    continue
        reason = getattr(last_exc, "reason", last_exc)
        raise RegistryError(f"{what or self.host}: cannot reach registry {self.api_host}: {reason}")

    def _request(self, method, url, scope, headers, what):
        tried_auth = False
        for _hop in range(8):
            same_host = urllib.parse.urlsplit(url).netloc == self.api_host
            auth = self._auth.get(scope) if same_host else None
            resp = self._open(method, url, headers, auth)
            status = resp.status if hasattr(resp, "status") else resp.code
            if status in (301, 302, 303, 307, 308):
                location = resp.headers.get("Location")
                resp.close()
                if not location:
                    raise RegistryError(f"{what}: redirect without a Location")
                url = urllib.parse.urljoin(url, location)
                if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
                    raise RegistryError(f"{what}: redirect to unsupported URL {url}")
                continue
            if status == 401 and same_host and not tried_auth:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.close()
                self._authenticate(challenge, scope, what)
                tried_auth = True
                continue
            if status >= 400:
                self._raise(resp, status, what)
            return resp
        raise RegistryError(f"{what}: too many redirects")

    def _raise(self, resp, status, what):
        try:
            body = resp.read(65536)
            errs = json.loads(body).get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs) or body.decode(errors="replace")
        except (ValueError, AttributeError, OSError):
            detail = ""
        finally:
            resp.close()
        detail = detail.strip().splitlines()[0] if detail.strip() else f"HTTP {status}"
        if status in (401, 403):
            raise AuthError(f"{what}: unauthorized ({status}): {detail}; try 'minibox login {self.host}'")
        if status == 404:
            raise NotFound(f"{what}: not found: {detail}")
        raise RegistryError(f"{what}: registry error {status}: {detail}")

    # -- auth --
    def _authenticate(self, challenge: str, scope: str, what: str) -> None:
        scheme, _, rest = challenge.partition(" ")
        params = _parse_challenge(rest)
        if scheme.lower() == "basic":
            if not self.credentials:
                raise AuthError(f"{what}: unauthorized: authentication required; try 'minibox login {self.host}'")
            self._check_cleartext(what)
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            self._auth[scope] = f"Basic {token}"
            return
        if scheme.lower() != "bearer" or "realm" not in params:
            raise AuthError(f"{what}: unsupported authentication challenge {challenge!r}")
        realm = params["realm"]
        realm_parts = urllib.parse.urlsplit(realm)
        if realm_parts.scheme != "https" and not (is_loopback(realm_parts.netloc) or self.insecure):
            raise AuthError(f"{what}: refusing a token service over plain HTTP: {realm}")
        query = {}
        if params.get("service"):
            query["service"] = params["service"]
        if params.get("scope") or scope:
            query["scope"] = params.get("scope") or scope
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, headers={"User-Agent": _UA})
        if self.credentials:
            cred = base64.b64encode(":".join(self.credentials).encode()).decode()
            req.add_unredirected_header("Authorization", f"Basic {cred}")
        try:
            with self._opener.open(req, timeout=self.timeout) as r:
                data = json.loads(r.read(1 << 20))
        except urllib.error.HTTPError as exc:
            raise AuthError(f"{what}: token service {realm} refused: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise AuthError(f"{what}: token service {realm}: {getattr(exc, 'reason', exc)}") from None
        token = data.get("token") or data.get("access_token")
        if not token:
            raise AuthError(f"{what}: token service {realm} returned no token")
        self._auth[scope] = f"Bearer {token}"

    def _check_cleartext(self, what: str) -> None:
        if self.schemes == ["http"] and not self.loopback and not self.insecure:
            raise AuthError(f"{what}: refusing to send credentials over plain HTTP")

    # -- API --
    def ping(self) -> None:
        """GET /v2/ (used by login to check credentials)."""
        self.request("GET", "/v2/", "", what=self.host).close()

    def get_manifest(self, repo: str, reference: str, what: str) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest by tag or digest, digest-verified."""
        import hashlib

        path = f"/v2/{repo}/manifests/{reference}"
        resp = self.request("GET", path, f"repository:{repo}:pull", {"Accept": ", ".join(MANIFEST_TYPES)}, what)
        with resp:
            length = resp.headers.get("Content-Length")
            if length and int(length) > MAX_MANIFEST:
                raise RegistryError(f"{what}: manifest of {length} bytes exceeds the {MAX_MANIFEST}-byte limit")
            body = resp.read(MAX_MANIFEST + 1)
            if len(body) > MAX_MANIFEST:
                raise RegistryError(f"{what}: manifest exceeds the {MAX_MANIFEST}-byte limit")
            media = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
            header_digest = resp.headers.get("Docker-Content-Digest")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"{what}: manifest digest mismatch: got {digest}, expected {reference}")
        if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
            raise RegistryError(f"{what}: manifest digest mismatch: got {digest}, registry says {header_digest}")
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryError(f"{what}: manifest is not JSON") from None
        media = doc.get("mediaType") or media
        return body, media, digest

    def open_blob(self, repo: str, digest: str, what: str):
        """A streaming response for a blob (the caller verifies the digest)."""
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull", {}, what)

    def get_blob(self, repo: str, digest: str, limit: int, what: str) -> bytes:
        """A small blob (an image config), size-capped and digest-verified."""
        import hashlib

        with self.open_blob(repo, digest, what) as resp:
            body = resp.read(limit + 1)
        if len(body) > limit:
            raise RegistryError(f"{what}: blob exceeds the {limit}-byte limit")
        got = "sha256:" + hashlib.sha256(body).hexdigest()
        if got != digest:
            raise RegistryError(f"{what}: digest mismatch: got {got}, expected {digest}")
        return body


def _parse_challenge(text: str) -> dict:
    """``realm="https://a",service="b",scope="c,d"`` → dict (quoted values may hold commas)."""
    out = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq].strip().lower()
        i = eq + 1
        if i < n and text[i] == '"':
            end = i + 1
            value = ""
            while end < n and text[end] != '"':
                if text[end] == "\\" and end + 1 < n:
                    end += 1
                value += text[end]
                end += 1
            i = end + 1
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            value = text[i:end].strip()
            i = end
        out[key] = value
    return out
