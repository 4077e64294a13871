"""Image references as docker reads them: ``[host[:port]/]path[:tag][@digest]``.

``busybox`` means ``docker.io/library/busybox:latest``; the *familiar* form
(``busybox:latest``, ``me/app:1``, ``127.0.0.1:5000/x:y``) is what the tag
index stores and what ``images`` prints, as docker does. Pure logic, no I/O.
"""

import re

from minibox.errors import UsageError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

# The grammar of distribution/reference, written out once.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME_MAX = 255


class Reference:
    """A normalised reference; ``tag`` is None only when a digest pins it.

    A plain immutable class rather than a dataclass: importing dataclasses
    costs ~20 ms, paid by every ``minibox run``.
    """

    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain: str, path: str, tag: str | None = None, digest: str | None = None):
        for name, value in (("domain", domain), ("path", path), ("tag", tag), ("digest", digest)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"Reference is immutable: cannot set {name}")

    def _key(self) -> tuple:
        return (self.domain, self.path, self.tag, self.digest)

    def __eq__(self, other) -> bool:
        return isinstance(other, Reference) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Reference(domain={self.domain!r}, path={self.path!r}, tag={self.tag!r}, digest={self.digest!r})"

    @property
    def repository(self) -> str:
        """``docker.io/library/busybox`` — the full name used on the wire."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """``busybox``, ``me/app`` or ``host:5000/x`` — docker's short form."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_PREFIX) and self.path.count("/") == 1:
                return self.path[len(OFFICIAL_PREFIX):]
            return self.path
        return self.repository

    def familiar(self) -> str:
        """``busybox:latest`` or ``busybox@sha256:...`` (the tag index key)."""
        if self.tag is not None:
            return f"{self.familiar_name}:{self.tag}"
        return f"{self.familiar_name}@{self.digest}"

    def __str__(self) -> str:
        s = self.repository
        if self.tag is not None:
            s += f":{self.tag}"
        if self.digest is not None:
            s += f"@{self.digest}"
        return s


def is_digest(text: str) -> bool:
    """True for ``sha256:<64 hex>``."""
    return bool(_SHA256_RE.match(text))


def parse(text: str, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse and normalise ``text``; a malformed one raises UsageError naming it.

    Without tag or digest the tag is ``default_tag`` (``latest``); pass
    ``default_tag=None`` to keep it absent (``docker pull -a`` style callers).
    """
    if not isinstance(text, str) or not text:
        raise UsageError(f"invalid reference format: {text!r}: empty reference")
    bad = f"invalid reference format: {text!r}"
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise UsageError(f"{bad}: invalid digest {digest!r}")
        if digest.startswith("sha256:") and not _SHA256_RE.match(digest):
            raise UsageError(f"{bad}: invalid sha256 digest {digest!r}")
    tag = None
    # A ':' after the last '/' is a tag; one before it is a registry port.
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise UsageError(f"{bad}: invalid tag {tag!r}")
    if not rest:
        raise UsageError(f"{bad}: missing repository name")
    domain, path = split_domain(rest)
    if not _DOMAIN_RE.match(domain):
        raise UsageError(f"{bad}: invalid registry host {domain!r}")
    if path != path.lower() and _PATH_RE.match(path.lower()):
        raise UsageError(f"{bad}: repository name must be lowercase")
    if not _PATH_RE.match(path):
        raise UsageError(f"{bad}: invalid repository name {path!r}")
    if len(f"{domain}/{path}") > _NAME_MAX:
        raise UsageError(f"{bad}: repository name must not be more than {_NAME_MAX} characters")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(domain, path, tag, digest)


def split_domain(name: str) -> tuple[str, str]:
    """Split ``name`` into registry host and path, applying docker.io defaults.

    The first component is a host only if it has a '.' or ':' or is
    ``localhost`` (or has upper case, which a path cannot); otherwise the
    name lives on Docker Hub, and one-component names under ``library/``.
    """
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, remainder
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain in LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path
