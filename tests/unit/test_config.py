"""Settings come from options and the environment, validated once."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from orchestrator.config import load_settings
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
