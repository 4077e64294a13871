import pytest

from minibox.errors import UsageError
from minibox.image import reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,domain,path,tag,digest,familiar", [
    ("busybox", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
    ("busybox:1", "docker.io", "library/busybox", "1", None, "busybox:1"),
    ("library/busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox:1.36"),
    ("docker.io/library/alpine", "docker.io", "library/alpine", "latest", None, "alpine:latest"),
    ("index.docker.io/me/app:v2", "docker.io", "me/app", "v2", None, "me/app:v2"),
    ("me/app", "docker.io", "me/app", "latest", None, "me/app:latest"),
    ("127.0.0.1:5000/test/multi:1", "127.0.0.1:5000", "test/multi", "1", None, "127.0.0.1:5000/test/multi:1"),
    ("localhost/x", "localhost", "x", "latest", None, "localhost/x:latest"),
    ("localhost:5000/a/b/c", "localhost:5000", "a/b/c", "latest", None, "localhost:5000/a/b/c:latest"),
    ("quay.io/coreos/etcd:v3.5", "quay.io", "coreos/etcd", "v3.5", None, "quay.io/coreos/etcd:v3.5"),
    (f"busybox@{D}", "docker.io", "library/busybox", None, D, f"busybox@{D}"),
    (f"host:1/r:t@{D}", "host:1", "r", "t", D, "host:1/r:t"),
    ("a-b__c/e.f:T.a-g", "docker.io", "a-b__c/e.f", "T.a-g", None, "a-b__c/e.f:T.a-g"),
])
def test_parse(text, domain, path, tag, digest, familiar):
    r = reference.parse(text)
    assert (r.domain, r.path, r.tag, r.digest) == (domain, path, tag, digest)
    if familiar:
        assert r.familiar() == familiar


def test_dotted_first_component_is_a_registry():
    # 'reg.d' has a '.', so it is a host, as docker reads it.
    r = reference.parse("reg.d/e_f:T")
    assert r.domain == "reg.d" and r.path == "e_f"
    with pytest.raises(UsageError):
        reference.parse("a_b.d/e:T")  # '_' is not allowed in a host name


def test_str_is_fully_qualified():
    assert str(reference.parse("busybox")) == "docker.io/library/busybox:latest"
    assert reference.parse("busybox").familiar_name == "busybox"
    assert reference.parse("me/app").repository == "docker.io/me/app"


def test_no_default_tag():
    assert reference.parse("busybox", default_tag=None).tag is None


@pytest.mark.parametrize("bad", [
    "", "BusyBox", "busybox:", ":tag", "busy box", "busybox:-x", "busybox@sha256:abc",
    "busybox@" + "a" * 64, "a//b", "/busybox", "busybox/", "a:b:c", "-x", "x" * 300,
    "host:99999x/repo", "ba..d", "UPPER.example/x:y:z",
])
def test_malformed_names_the_reference(bad):
    with pytest.raises(UsageError) as exc:
        reference.parse(bad)
    assert repr(bad)[:20] in str(exc.value) or bad == "" or "empty" in str(exc.value)


def test_is_digest():
    assert reference.is_digest(D)
    assert not reference.is_digest("sha256:abc")
