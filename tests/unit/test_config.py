"""Settings come from options and the environment, validated once."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from orchestrator.config import is_loopback_host, load_network, load_settings
from orchestrator.errors import ConfigError


def test_options_win_over_environment(tmp_path: Path) -> None:
    """A command-line option overrides its environment variable."""
    env = {
        "ORCHESTRATOR_HOME": str(tmp_path / "env"),
        "ORCHESTRATOR_API_BASE": "http://127.0.0.1:1/",
    }
    settings = load_settings(environ=env, home=tmp_path / "opt")
    assert settings.home == tmp_path / "opt"
    assert settings.api_base == "http://127.0.0.1:1"


def test_client_secret_is_hidden_in_repr(tmp_path: Path) -> None:
    """The client secret never shows in the settings' repr."""
    env = {"ORCHESTRATOR_HOME": str(tmp_path), "TIKTOK_CLIENT_SECRET": "s3cr3t-value"}
    settings = load_settings(environ=env)
    assert "s3cr3t-value" not in repr(settings)
    with pytest.raises(ConfigError, match="TIKTOK_CLIENT_KEY"):
        settings.require_client()


def test_redirect_uri_must_be_loopback(tmp_path: Path) -> None:
    """A non-loopback redirect URI is refused with the variable named."""
    env = {"ORCHESTRATOR_HOME": str(tmp_path), "TIKTOK_REDIRECT_URI": "https://example.com/cb"}
    with pytest.raises(ConfigError, match="TIKTOK_REDIRECT_URI"):
        load_settings(environ=env)


@pytest.mark.parametrize("key", ["not base64!!", base64.b64encode(b"short").decode()])
def test_bad_token_key_is_refused(tmp_path: Path, key: str) -> None:
    """A token key that is not base64 of 32 bytes is refused with the fix."""
    env = {"ORCHESTRATOR_HOME": str(tmp_path), "ORCHESTRATOR_TOKEN_KEY": key}
    with pytest.raises(ConfigError, match="ORCHESTRATOR_TOKEN_KEY") as info:
        load_settings(environ=env)
    assert info.value.hint is not None
    assert "urandom(32)" in info.value.hint


@pytest.mark.parametrize("variable", ["ORCHESTRATOR_API_BASE", "ORCHESTRATOR_AUTH_URL"])
@pytest.mark.parametrize(
    "url", ["http://192.0.2.1", "http://api.example/v2/", "http://[2001:db8::1]"]
)
def test_plain_http_off_the_machine_is_refused(tmp_path: Path, variable: str, url: str) -> None:
    """An http:// API or auth URL to another host is a ConfigError naming the variable and the
    fix: tokens would travel in clear text."""
    with pytest.raises(ConfigError, match=variable) as caught:
        load_settings(environ={"ORCHESTRATOR_HOME": str(tmp_path), variable: url})
    assert "clear text" in str(caught.value)
    assert "https://" in (caught.value.hint or "")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://127.9.9.9", "http://[::1]:1", "http://LOCALHOST:5"]
)
def test_plain_http_to_loopback_is_allowed(tmp_path: Path, url: str) -> None:
    """A local sandbox on 127.0.0.0/8, ::1 or localhost may use http://."""
    settings = load_settings(environ={"ORCHESTRATOR_HOME": str(tmp_path)}, api_base=url)
    assert settings.api_base == url


def test_loopback_means_this_machine_only() -> None:
    """Names that merely look local are not loopback."""
    assert is_loopback_host("127.0.0.1")
    assert is_loopback_host("::1")
    assert not is_loopback_host("localhost.example")
    assert not is_loopback_host("0.0.0.0")
    assert not is_loopback_host("10.0.0.1")


def test_proxies_come_from_the_environment_and_loopback_bypasses_them() -> None:
    """HTTPS_PROXY/https_proxy and HTTP_PROXY apply per scheme; NO_PROXY and loopback bypass."""
    network = load_network(
        {
            "https_proxy": "http://user:pw@proxy.example:3128",
            "HTTP_PROXY": "proxy.example:8080",
            "NO_PROXY": "internal.example, .corp.example,10.0.0.0/8,api.example:8443",
        }
    )
    https = network.proxy_for("https", "open.tiktokapis.com", None)
    assert https is not None
    assert https.reveal() == "http://user:pw@proxy.example:3128"
    assert "pw" not in repr(network)
    plain = network.proxy_for("http", "open.tiktokapis.com", None)
    assert plain is not None
    assert plain.reveal() == "http://proxy.example:8080"
    for host, port in [
        ("127.0.0.1", 1),
        ("localhost", 1),
        ("::1", 1),
        ("internal.example", None),
        ("a.corp.example", None),
        ("10.2.3.4", None),
        ("api.example", 8443),
    ]:
        assert network.proxy_for("https", host, port) is None, host
    assert network.proxy_for("https", "api.example", 443) is not None
    assert network.proxy_for("https", "notinternal.example", None) is not None


def test_ca_bundle_from_requests_or_openssl_variable(tmp_path: Path) -> None:
    """REQUESTS_CA_BUNDLE wins over SSL_CERT_FILE; a bundle that is not a file is refused."""
    first, second = tmp_path / "a.pem", tmp_path / "b.pem"
    first.write_text("x")
    second.write_text("y")
    assert load_network({"SSL_CERT_FILE": str(second)}).ca_bundle == second
    both = {"REQUESTS_CA_BUNDLE": str(first), "SSL_CERT_FILE": str(second)}
    assert load_network(both).ca_bundle == first
    assert load_network({}).ca_bundle is None
    with pytest.raises(ConfigError, match="REQUESTS_CA_BUNDLE") as caught:
        load_network({"REQUESTS_CA_BUNDLE": str(tmp_path / "missing.pem")})
    assert "PEM" in (caught.value.hint or "")


def test_step_summary_path_comes_from_github_actions_variable(tmp_path: Path) -> None:
    """$GITHUB_STEP_SUMMARY becomes Settings.step_summary; unset or empty means none."""
    summary = tmp_path / "summary.md"
    found = load_settings(environ={"GITHUB_STEP_SUMMARY": str(summary)}, home=tmp_path)
    assert found.step_summary == summary
    assert load_settings(environ={}, home=tmp_path).step_summary is None
    assert load_settings(environ={"GITHUB_STEP_SUMMARY": ""}, home=tmp_path).step_summary is None


def test_config_is_the_only_module_that_reads_the_environment() -> None:
    """No module but orchestrator/config.py reads os.environ or calls getenv."""
    root = Path(__file__).resolve().parents[2] / "orchestrator"
    readers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "config.py" or path.parent != root
        if re.search(r"\bos\.environ\b|\bgetenv\(|\bfrom os import .*environ", path.read_text())
    )
    assert readers == []
