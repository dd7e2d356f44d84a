"""Requests as the endpoints see them, and answers shaped the way TikTok shapes them.

Answers follow ``tiktok-api.md`` §1:

- Posting endpoints: ``{"data": {...}, "error": {"code", "message", "log_id"}}``; ``data`` is
  ``{}`` on failure.
- OAuth endpoints: flat JSON; failures are ``{"error", "error_description", "log_id"}``,
  at HTTP 200 as TikTok does.
- Upload PUTs: a status code and, when the server holds bytes, ``Content-Range`` progress.

:class:`Request` and :class:`Reply` are plain values: the server parses the first and writes the
second. Nothing here touches a socket.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

JSON_TYPE = "application/json; charset=UTF-8"
HTML_TYPE = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request: header names lower-case, the body read whole (not for uploads)."""

    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    connection: str = ""  # the client's address and port: one TCP connection

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def arg(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    def form_lists(self) -> dict[str, list[str]]:
        """The body as a urlencoded form, every value of each field."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        return parse_qs(text, keep_blank_values=True)

    def form(self) -> dict[str, str]:
        """The body as a urlencoded form (first value of each field)."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        return {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}


@dataclass(frozen=True)
class Reply:
    """One HTTP answer. ``close`` asks the server to close the connection after it."""

    status: int
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False

    def json(self) -> Any:
        """The body as JSON (for tests and logs)."""
        return json.loads(self.body) if self.body else None

    def with_close(self) -> Reply:
        return Reply(self.status, self.body, self.content_type, self.headers, close=True)


def new_log_id(now: float) -> str:
    """A TikTok-looking log id: a UTC timestamp and random hex."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    return f"{stamp}{secrets.token_hex(9).upper()}"


def _json(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def posting_ok(data: dict[str, Any], log_id: str) -> Reply:
    """A posting-endpoint success."""
    return Reply(
        200, _json({"data": data, "error": {"code": "ok", "message": "", "log_id": log_id}})
    )


def posting_error(status: int, code: str, message: str, log_id: str) -> Reply:
    """A posting-endpoint failure: empty ``data`` and the error code."""
    return Reply(
        status, _json({"data": {}, "error": {"code": code, "message": message, "log_id": log_id}})
    )


def oauth_ok(payload: dict[str, Any]) -> Reply:
    """An OAuth success (flat JSON)."""
    return Reply(200, _json(payload))


def oauth_error(error: str, description: str, log_id: str, status: int = 200) -> Reply:
    """An OAuth failure: flat JSON with ``error``, at HTTP 200 unless told otherwise."""
    return Reply(
        status, _json({"error": error, "error_description": description, "log_id": log_id})
    )


def html_page(status: int, page: str) -> Reply:
    return Reply(status, page.encode("utf-8"), HTML_TYPE)


def redirect(location: str) -> Reply:
    """A 302 to ``location`` (the OAuth callback)."""
    return Reply(302, b"", None, (("Location", location),))


def progress_range(received: int, total: int) -> tuple[tuple[str, str], ...]:
    """``Content-Range: bytes 0-LAST/TOTAL`` when any bytes are held, else nothing."""
    if received <= 0:
        return ()
    return (("Content-Range", f"bytes 0-{received - 1}/{total}"),)


def upload_reply(status: int, received: int, total: int) -> Reply:
    """A chunk PUT answer: the status and the progress in ``Content-Range``, and no body.

    tiktok-api.md §5 documents a PUT's status codes and ``Content-Range`` only; a body (an
    envelope with codes of our own making) would let a client come to depend on it.
    """
    return Reply(status, b"", None, progress_range(received, total))
