"""The prologue every Bearer-token endpoint runs, and the refusal it answers with.

Authenticate → scope → rate window, then read the JSON body; a request refused anywhere on
the way raises :class:`Refusal` carrying TikTok's answer in the posting envelope, which
:meth:`PostingEndpoint._run` turns back into the reply. Endpoint families (``creator``,
``video_init``, ``photo_init``, ``status``) subclass :class:`PostingEndpoint`.

Must not: do I/O, or hold the state lock while a body streams in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orchestrator.sandbox.config import SandboxUser
from orchestrator.sandbox.messages import Reply, Request, posting_error
from orchestrator.sandbox.rules import media_type
from orchestrator.sandbox.state import AccessToken, SandboxState


class Refusal(Exception):
    """A request refused: carries the answer (control flow inside the endpoint modules only)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class PostingEndpoint:
    """The shared prologue of the posting endpoints, over the sandbox state."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._config = state.config

    def _error(self, status: int, code: str, message: str) -> Refusal:
        return Refusal(posting_error(status, code, message, self._state.log_id()))

    def _refuse(self, endpoint: str, status: int, code: str, message: str, why: str) -> Refusal:
        """A refusal that a careful client would never provoke: also a violation."""
        self._state.violation(endpoint, why)
        return self._error(status, code, message)

    def _token(self, endpoint: str, request: Request, *scopes: str) -> AccessToken:
        """Authenticate, check one of ``scopes`` (if any), count the rate window."""
        token = self._state.authenticate(endpoint, request.header("authorization"))
        if isinstance(token, Reply):
            raise Refusal(token)
        if scopes:
            refused = self._state.require_scope(endpoint, token, *scopes)
            if refused is not None:
                raise Refusal(refused)
        limited = self._state.take_rate(endpoint, token)
        if limited is not None:
            raise Refusal(limited)
        return token

    def _user(self, token: AccessToken) -> SandboxUser:
        user = self._state.user(token.open_id)
        if user is None:  # tokens are only issued to configured users
            raise self._error(500, "internal_error", "Unknown user.")
        return user

    def _json_body(
        self, endpoint: str, request: Request, *, empty_ok: bool = False
    ) -> dict[str, Any]:
        if request.body and media_type(request.header("content-type")) != "application/json":
            self._state.violation(endpoint, "JSON body sent without Content-Type: application/json")
        if not request.body.strip():
            if empty_ok:
                return {}
            raise self._refuse(
                endpoint, 400, "invalid_params", "Request body is empty.", "empty body"
            )
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                "Request body is not valid JSON.",
                "body is not JSON",
            ) from None
        if not isinstance(body, dict):
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                "Request body must be a JSON object.",
                "body not an object",
            )
        return body

    @staticmethod
    def _run(handler: Callable[[Request], Reply], request: Request) -> Reply:
        try:
            reply: Reply = handler(request)
        except Refusal as refused:
            return refused.reply
        return reply

    def _over_active_user_cap(self, user: SandboxUser) -> bool:
        if not self._config.unaudited:
            return False
        active = self._state.active_posting_users()
        return user.open_id not in active and len(active) >= self._config.unaudited_user_cap
