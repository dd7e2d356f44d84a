"""A PostgreSQL store URL never shows its password, whatever is wrong with it.

The URL is checked by ``store.postgres.parse_store_url`` before psycopg sees it, so these tests
run without the ``postgres`` extra; the ones that let psycopg try the URL skip without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.secret import Secret
from orchestrator.store.postgres import PostgresDatabase, parse_store_url
from tests.support.tiers import fuzz_examples

_NO_PSYCOPG = importlib.util.find_spec("psycopg") is None
needs_psycopg = pytest.mark.skipif(
    _NO_PSYCOPG and os.environ.get("CI") != "true",
    reason="needs the postgres extra: pip install 'tiktok-orchestrator[postgres]'",
)

_PREFIX = "postgresql://tiktok:"
_SUFFIX = "@127.0.0.1:1/orchestrator"


def _shown(error: OrchestratorError) -> str:
    return f"{error}\n{error.hint or ''}"


def _own_words() -> str:
    """Everything our messages say of their own (one URL per problem, none with a password):
    a password that happens to contain "word" or "name" is not shown by saying "password"."""
    shown = []
    for url in (
        "mysql://h/d",
        "postgresql://a%zz@h/d",
        "postgresql://a%ff@h/d",
        "postgresql://a/b@h/d",
        "postgresql://[::1/d",
        "postgresql://[::1]x/d",
        "postgresql://h]/d",
        "postgresql://h:x/d",
        "postgresql://h/d d",
        "postgresql://h/%zz",
    ):
        with pytest.raises(ConfigError) as caught:
            parse_store_url(Secret(url))
        shown.append(_shown(caught.value))
    return "\n".join(shown)


_OWN_WORDS = _own_words()


def _leaks(password: str, url: str, shown: str) -> list[str]:
    """Every 4+-character piece of ``password`` in ``shown`` that neither the rest of ``url``
    nor our own wording holds."""
    rest = url.replace(password, "\x00")
    return [
        password[start:end]
        for start in range(len(password))
        for end in range(start + 4, len(password) + 1)
        if password[start:end] in shown
        and password[start:end] not in rest
        and password[start:end] not in _OWN_WORDS
    ]


@pytest.mark.parametrize("password", ["p%ssw0rd", "pa@ss/w0rd", "p%zzword", "pass#word?x"])
def test_a_malformed_password_is_refused_without_showing_it(password: str) -> None:
    """A password psycopg could not read is a ConfigError naming the fix, not the password."""
    url = f"{_PREFIX}{password}{_SUFFIX}"
    with pytest.raises(ConfigError) as caught:
        PostgresDatabase(Secret(url))
    assert "is not a valid PostgreSQL URL" in str(caught.value)
    assert "percent-encode" in (caught.value.hint or "")
    assert _leaks(password, url, _shown(caught.value)) == []


@needs_psycopg
@pytest.mark.parametrize("password", ["p%ssw0rd", "pa@ss/w0rd"])
def test_opening_a_malformed_url_never_shows_the_password(password: str) -> None:
    """The issue's URLs, opened for real: psycopg is never left to quote them."""
    url = f"{_PREFIX}{password}{_SUFFIX}"
    with pytest.raises(OrchestratorError) as caught:
        PostgresDatabase.open(Secret(url))
    assert _leaks(password, url, _shown(caught.value)) == []
    assert "ssw0rd" not in _shown(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://tiktok:p%25ss%40w%2F0rd@db.example:6432/jobs", "db.example:6432/jobs"),
        ("postgres://tiktok@[::1]/jobs?sslmode=require", "::1:5432/jobs"),
        ("postgresql://tiktok:pw@h1,h2:5433/jobs", "h1,h2:5433/jobs"),
        ("postgresql:///jobs", "localhost:5432/jobs"),
    ],
)
def test_a_well_formed_url_names_its_server_only(url: str, shown: str) -> None:
    """Percent-encoded passwords, IPv6, host lists and defaults are accepted; only the server
    and database are ever shown."""
    location = str(parse_store_url(Secret(url)))
    assert location == f"PostgreSQL {shown}"


_PASSWORD = st.text(
    alphabet=st.sampled_from(list("%@/:?#[] abcdefXYZ0189-_.~+é€😀")) | st.characters(),
    min_size=1,
    max_size=24,
)


@settings(max_examples=fuzz_examples(400), deadline=None)
@given(password=_PASSWORD, user=st.sampled_from(["tiktok", "", "a%40b"]))
def test_no_piece_of_a_random_password_is_ever_shown(password: str, user: str) -> None:
    """Fuzz: any password (with %, @, /, :, unicode) is either accepted — and the location
    shown holds none of it — or refused by a message that holds none of it."""
    url = f"postgresql://{user}:{password}@db.example:5432/orchestrator"
    try:
        shown = PostgresDatabase(Secret(url)).location
    except ConfigError as exc:
        shown = _shown(exc)
    assert _leaks(password, url, shown) == []


@settings(max_examples=fuzz_examples(300), deadline=None)
@given(tail=st.text(min_size=0, max_size=40))
def test_any_text_after_the_scheme_is_a_config_error_or_a_location(tail: str) -> None:
    """Fuzz: a URL of any shape is accepted or refused by ConfigError, never a library error."""
    with contextlib.suppress(ConfigError):
        parse_store_url(Secret(f"postgresql://{tail}"))
