"""Fixtures for the web application: a home, a manual clock, the app and a signed-in client."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.clock import ManualClock
from orchestrator.config import Settings, WebConfig, load_settings, load_web_config
from orchestrator.store.tokens import TokenStore
from orchestrator.web import create_app

if TYPE_CHECKING:
    from tests.web.api_rig import ApiRig

ADMIN_PASSWORD = "correct horse battery staple"


def _cheap_scrypt_hash(password: str) -> str:
    """``password`` as an ``ORCHESTRATOR_ADMIN_PASSWORD_HASH`` with the smallest cost the app
    accepts (n=2**10): each sign-in then costs ~1 ms of scrypt instead of ~50 ms. The product's
    own cost and the plain-password form are tested in test_security.py."""
    salt = b"tests-fixed-salt"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**10, r=8, p=1, dklen=32)
    encode = base64.urlsafe_b64encode
    return f"$scrypt$n={2**10},r=8,p=1${encode(salt).decode()}${encode(digest).decode()}"


ADMIN_PASSWORD_HASH = _cheap_scrypt_hash(ADMIN_PASSWORD)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    """The CSRF token in a page's first form."""
    match = _CSRF.search(page)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, password: str = ADMIN_PASSWORD, next_path: str = "") -> object:
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"password": password, "csrf_token": token, "next": next_path}
    )


def post_form(client: FlaskClient, page: str, action: str, data: dict[str, object]) -> object:
    """Send a form the way a browser does: read the page's CSRF token, then post."""
    token = csrf_of(client.get(page).text)
    return client.post(action, data={**data, "csrf_token": token})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(environ={}, home=tmp_path / "home")


@pytest.fixture
def web_config() -> WebConfig:
    return load_web_config(environ={"ORCHESTRATOR_ADMIN_PASSWORD_HASH": ADMIN_PASSWORD_HASH})


@pytest.fixture
def token_store(settings: Settings, clock: ManualClock) -> Iterator[TokenStore]:
    with TokenStore.open(settings, clock=clock) as store:
        yield store


@pytest.fixture
def app(
    web_config: WebConfig, settings: Settings, clock: ManualClock, token_store: TokenStore
) -> Flask:
    return create_app(web_config, settings=settings, clock=clock, token_store=token_store)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def operator(client: FlaskClient) -> FlaskClient:
    """A client signed in as the operator."""
    response = sign_in(client)
    assert getattr(response, "status_code", None) == 302
    return client


@pytest.fixture
def idle_rig(tmp_path: Path) -> Iterator[ApiRig]:
    """The API stack with its worker not started yet: posts wait in the store."""
    from tests.web.api_rig import open_api_rig  # it imports this module's constants

    with open_api_rig(tmp_path, worker_running=False) as opened:
        yield opened
