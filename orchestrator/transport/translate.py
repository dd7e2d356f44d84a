"""Library failures translated at the boundary: ``requests``/``urllib3`` exceptions become
:mod:`orchestrator.errors` types, with a short URL-free reason and whether the request may
have reached the server; plain ``http://`` off this machine is refused before connecting.

Must not: chain the library exception (callers raise ``from None``: its text holds the URL).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from orchestrator.config import is_loopback_host
from orchestrator.errors import (
    CertificateError,
    ConnectError,
    PlainHttpError,
    RequestTimeout,
    TransportError,
)


def refuse_plain_http(url: str, shown: str) -> None:
    """PlainHttpError for ``http://`` to a host that is not loopback, before any connection."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname):
        raise PlainHttpError(
            f"{shown}: refusing to send over plain http:// to {parts.hostname}, which is not "
            "this machine (the request's token would cross the network in clear text)",
            hint="use https:// (ORCHESTRATOR_API_BASE, ORCHESTRATOR_AUTH_URL); http:// is "
            "allowed only to 127.0.0.1, ::1 or localhost. An upload URL like this one comes "
            "from the API server: check that ORCHESTRATOR_API_BASE points at TikTok",
        )


def _certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error inside a requests/urllib3 failure, if that is it."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
    return None


def translate(exc: BaseException, shown: str, url: str) -> TransportError | CertificateError:
    """Our error for a ``requests``/socket failure; its text never includes the URL's query."""
    refused = _certificate_failure(exc)
    if refused is not None:
        host = urlsplit(url).hostname
        reason = refused.verify_message or refused.reason or "certificate verify failed"
        return CertificateError(
            f"{shown}: the TLS certificate of {host} does not verify ({reason}); "
            "nothing was sent to it",
            hint="if the server uses a private CA (or a proxy inspects TLS), set "
            "REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) to the CA's PEM file; otherwise check "
            "ORCHESTRATOR_API_BASE and what sits between this machine and the server",
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return RequestTimeout(f"{shown}: connect timed out", maybe_delivered=False)
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError):
        return RequestTimeout(f"{shown}: timed out")
    if isinstance(exc, requests.exceptions.ConnectionError | OSError):
        return ConnectError(
            f"{shown}: connection failed ({_reason(exc)})", maybe_delivered=_maybe_delivered(exc)
        )
    return TransportError(f"{shown}: {type(exc).__name__}")


def _causes(exc: BaseException) -> Iterable[BaseException]:
    """``exc``, the errors it wraps (requests keeps urllib3's in ``args``), and their causes."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)


def _maybe_delivered(exc: BaseException) -> bool:
    """False only when the connection was never opened, so the server cannot have the request."""
    return not any(
        isinstance(cause, urllib3.exceptions.NewConnectionError | ConnectionRefusedError)
        for cause in _causes(exc)
    )


def _reason(exc: BaseException) -> str:
    """A short, URL-free reason for a connection failure."""
    text = str(exc).lower()
    for needle, reason in (
        ("reset", "connection reset"),
        ("refused", "connection refused"),
        ("aborted", "connection aborted"),
        ("remote end closed", "remote end closed the connection"),
        ("broken pipe", "broken pipe"),
        ("name or service", "host name not resolved"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__
