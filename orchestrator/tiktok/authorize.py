"""PKCE, the authorize URL, and the redirect back: a login attempt's pure half.

The verifier and ``state`` are fresh per attempt; the code challenge is the hex digest TikTok's
desktop flow wants (see :func:`code_challenge`). A redirect is ours only when its ``state``
matches. Must not: listen, send requests, or print.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qs, urlencode, urlsplit

from orchestrator.config import DEFAULT_SCOPES
from orchestrator.errors import AuthError, ConfigError, OAuthError
from orchestrator.secret import Secret
from orchestrator.tiktok.oauth_answers import oauth_hint, parse_scopes, short_description
from orchestrator.tiktok.oauth_values import AuthorizationCode, AuthorizationRequest

VERIFIER_ALPHABET = string.ascii_letters + string.digits + "-._~"
VERIFIER_LENGTH = 64  # RFC 7636 allows 43-128 characters


def new_code_verifier(length: int = VERIFIER_LENGTH) -> Secret:
    """A fresh PKCE verifier: ``length`` characters from RFC 7636's unreserved set."""
    if not 43 <= length <= 128:
        raise ValueError("a PKCE verifier has 43 to 128 characters")
    return Secret("".join(secrets.choice(VERIFIER_ALPHABET) for _ in range(length)))


def code_challenge(verifier: Secret) -> str:
    """The S256 challenge *as TikTok's desktop flow wants it*: the **hex** SHA-256 digest.

    RFC 7636 says base64url; TikTok's desktop login deviates and refuses that at token exchange
    ("Code verifier or code challenge is invalid"), so we send 64 lowercase hex characters.
    """
    return hashlib.sha256(verifier.reveal().encode("ascii")).hexdigest()


def build_authorization_request(
    *,
    auth_url: str,
    client_key: str,
    redirect_uri: str,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    challenge: Callable[[Secret], str] = code_challenge,
    extra: Mapping[str, str] | None = None,
    no_scopes_hint: str = "pass --scopes user.info.basic,...",
) -> AuthorizationRequest:
    """A fresh login attempt: new verifier and state, and the authorize URL carrying them.

    ``challenge`` turns the verifier into the ``code_challenge`` (the desktop flow's hex by
    default; the web flow passes its reading); ``extra`` parameters go at the end of the query.
    """
    scope_list = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    if not scope_list:
        raise ConfigError("no scopes requested", hint=no_scopes_hint)
    verifier = new_code_verifier()
    state = Secret(secrets.token_urlsafe(32))
    query = urlencode(
        {
            "client_key": client_key,
            "scope": ",".join(scope_list),
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state.reveal(),
            "code_challenge": challenge(verifier),
            "code_challenge_method": "S256",
            **(extra or {}),
        }
    )
    separator = "&" if urlsplit(auth_url).query else "?"
    return AuthorizationRequest(
        url=f"{auth_url}{separator}{query}",
        redirect_uri=redirect_uri,
        scopes=scope_list,
        state=state,
        code_verifier=verifier,
    )


def state_matches(received: str | None, expected: Secret) -> bool:
    if received is None:
        return False
    return hmac.compare_digest(received.encode(), expected.reveal().encode())


def single_param(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def authorization_from_params(
    params: Mapping[str, list[str]], *, expected_state: Secret
) -> AuthorizationCode:
    """The code from a redirect's query parameters, after checking ``state``.

    Raises ``OAuthError`` for an ``error=`` redirect (the user refused, or TikTok did) and
    ``AuthError`` for a wrong state or a missing code.
    """
    received_state = single_param(params, "state")
    error = single_param(params, "error")
    # A redirect with a *wrong* state is not ours and changes nothing; an error redirect that
    # carries no state at all is accepted, since all it can do is end this login.
    if not state_matches(received_state, expected_state) and not (error and received_state is None):
        raise AuthError(
            "the redirect's state does not match this login (a link from an older attempt, "
            "or not from TikTok); nothing was exchanged",
            hint="run `auth login` again and use the newest browser tab",
        )
    if error:
        description = short_description(
            single_param(params, "error_description") or "no description"
        )
        raise OAuthError(error, description, hint=oauth_hint(error))
    code = single_param(params, "code")
    if not code:
        raise AuthError("the redirect carries neither a code nor an error")
    return AuthorizationCode(Secret(code), parse_scopes(single_param(params, "scopes") or ""))


def parse_pasted_redirect(text: str, *, expected_state: Secret) -> AuthorizationCode:
    """The code from the redirected URL a user pasted (``--no-browser``), state checked."""
    text = text.strip()
    if not text:
        raise AuthError(
            "no URL was pasted", hint="paste the whole address the browser was redirected to"
        )
    query = urlsplit(text).query if "://" in text else text.lstrip("?")
    return authorization_from_params(parse_qs(query), expected_state=expected_state)
