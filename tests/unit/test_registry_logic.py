"""Pure parts of the registry client and pull: challenges, loopback, platforms, manifests."""

import pytest

from minibox.errors import MiniboxError, NotFound, UsageError
from minibox.image import platform, registry
from minibox.image.pull import check_manifest, select_platform

D = "sha256:" + "b" * 64


def test_parse_challenge():
    c = registry._parse_challenge('realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"')
    assert c == {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull,push"}
    assert registry._parse_challenge('realm="x\\"y", error=invalid_token') == {"realm": 'x"y', "error": "invalid_token"}


@pytest.mark.parametrize("host,loop", [
    ("127.0.0.1:5000", True), ("127.9.9.9", True), ("localhost:1", True), ("[::1]:5000", True),
    ("10.0.0.1:5000", False), ("registry-1.docker.io", False), ("example.com:443", False),
])
def test_is_loopback(host, loop):
    assert registry.is_loopback(host) is loop


def test_plain_http_only_for_loopback_or_opt_in():
    assert registry.Client("127.0.0.1:5000").schemes == ["https", "http"]
    assert registry.Client("quay.io").schemes == ["https"]
    assert registry.Client("docker.io").api_host == "registry-1.docker.io"
    assert registry.Client("reg.lan:5000", insecure=True).schemes == ["https", "http"]


def test_platform_parse_and_match():
    assert platform.parse("linux/arm64/v8") == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    assert platform.parse("amd64")["os"] == "linux"
    with pytest.raises(UsageError):
        platform.parse("linux//")
    want = {"os": "linux", "architecture": "arm64", "variant": ""}
    assert platform.matches(want, {"os": "linux", "architecture": "arm64", "variant": "v8"})
    assert not platform.matches(want, {"os": "linux", "architecture": "amd64"})


def test_select_platform_skips_non_matching_and_attestations():
    index = {"manifests": [
        {"mediaType": registry.MT_OCI_MANIFEST, "digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": registry.MT_OCI_MANIFEST, "digest": "sha256:" + "3" * 64,
         "platform": {"os": "unknown", "architecture": "unknown"}},
        {"mediaType": registry.MT_OCI_MANIFEST, "digest": "sha256:" + "2" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    got = select_platform(index, {"os": "linux", "architecture": "amd64", "variant": ""}, "x")
    assert got["digest"] == "sha256:" + "2" * 64
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        select_platform(index, {"os": "linux", "architecture": "s390x", "variant": ""}, "x")


def test_check_manifest():
    good = {"schemaVersion": 2, "config": {"digest": D, "size": 1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 3}]}
    cfg, layers = check_manifest(good, registry.MT_OCI_MANIFEST, "x")
    assert cfg["digest"] == D and len(layers) == 1
    with pytest.raises(MiniboxError, match="unsupported manifest media type"):
        check_manifest(good, "application/vnd.docker.distribution.manifest.v1+prettyjws", "x")
    bad = dict(good, layers=[{"mediaType": "application/x-weird", "digest": D, "size": 3}])
    with pytest.raises(MiniboxError, match="unsupported layer media type"):
        check_manifest(bad, registry.MT_OCI_MANIFEST, "x")
    with pytest.raises(MiniboxError, match="malformed"):
        check_manifest(dict(good, config={"digest": "nope"}), registry.MT_OCI_MANIFEST, "x")


def test_credentials_file_is_private(tmp_path):
    root = str(tmp_path / "root")
    registry.save_credentials(root, "127.0.0.1:5000", "user", "p:w")
    path = registry.auth_file(root)
    import os
    import stat

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert registry.load_credentials(root, "127.0.0.1:5000") == ("user", "p:w")
    registry.save_credentials(root, "127.0.0.1:5000", None, None)
    assert registry.load_credentials(root, "127.0.0.1:5000") is None
