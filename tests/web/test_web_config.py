"""`serve`'s settings: the public URL rule, the password forms, proxies, upload roots, PKCE."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import load_web_config
from orchestrator.errors import ConfigError

PASSWORD = {"ORCHESTRATOR_ADMIN_PASSWORD": "a password"}


def test_an_https_public_url_is_taken_as_is() -> None:
    """An https public URL: cookies Secure, redirect URI under /connect/callback/."""
    config = load_web_config(
        environ={**PASSWORD, "ORCHESTRATOR_PUBLIC_URL": "https://posts.example/"}
    )
    assert config.public_url == "https://posts.example"
    assert config.redirect_uri == "https://posts.example/connect/callback/"
    assert config.secure_cookies
    assert config.warnings == ()


@pytest.mark.parametrize("url", ["http://localhost:8700", "http://127.0.0.1:9000"])
def test_an_http_public_url_on_loopback_is_a_warning(url: str) -> None:
    """Plain http to this machine is accepted (trying it locally), with a warning."""
    config = load_web_config(environ={**PASSWORD, "ORCHESTRATOR_PUBLIC_URL": url})
    assert not config.secure_cookies
    assert "plain http://" in config.warnings[0]


def test_an_http_public_url_elsewhere_is_refused() -> None:
    """Plain http to another host is refused, naming the variable and the fix."""
    with pytest.raises(ConfigError, match="ORCHESTRATOR_PUBLIC_URL is a plain http://") as info:
        load_web_config(environ={**PASSWORD, "ORCHESTRATOR_PUBLIC_URL": "http://posts.example"})
    assert "reverse proxy" in (info.value.hint or "")


def test_a_public_bind_needs_a_public_url() -> None:
    """Listening off loopback without saying the public URL is refused."""
    with pytest.raises(ConfigError, match="not loopback"):
        load_web_config(environ=PASSWORD, host="0.0.0.0")


def test_a_password_is_required_and_one_form_only() -> None:
    """No password at all, both forms at once, or a malformed hash: refused with the fix."""
    with pytest.raises(ConfigError, match="nobody could sign in"):
        load_web_config(environ={})
    with pytest.raises(ConfigError, match="both"):
        load_web_config(
            environ={**PASSWORD, "ORCHESTRATOR_ADMIN_PASSWORD_HASH": "$scrypt$n=2,r=1,p=1$a$b"}
        )
    with pytest.raises(ConfigError, match="not a \\$scrypt\\$ hash"):
        load_web_config(environ={"ORCHESTRATOR_ADMIN_PASSWORD_HASH": "plain"})


def test_proxies_roots_and_pkce_are_validated(tmp_path: Path) -> None:
    """Trusted proxies is a small number, upload roots are existing folders, PKCE a reading."""
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load_web_config(environ={**PASSWORD, "ORCHESTRATOR_TRUSTED_PROXIES": "yes"})
    with pytest.raises(ConfigError, match="not a folder"):
        load_web_config(environ={**PASSWORD, "ORCHESTRATOR_UPLOAD_ROOTS": str(tmp_path / "no")})
    with pytest.raises(ConfigError, match="WEB_PKCE"):
        load_web_config(environ={**PASSWORD, "ORCHESTRATOR_WEB_PKCE": "plain"})
    config = load_web_config(
        environ={
            **PASSWORD,
            "ORCHESTRATOR_TRUSTED_PROXIES": "1",
            "ORCHESTRATOR_UPLOAD_ROOTS": str(tmp_path),
            "ORCHESTRATOR_WEB_PKCE": "HEX",
        }
    )
    assert config.trusted_proxies == 1
    assert config.upload_roots == (tmp_path.resolve(),)
    assert config.pkce == "hex"
    assert load_web_config(environ=PASSWORD).pkce == "s256"


def test_the_password_is_not_in_the_config_repr() -> None:
    """The settings object never shows the password."""
    assert "a password" not in repr(load_web_config(environ=PASSWORD))
