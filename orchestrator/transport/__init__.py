"""HTTP for the orchestrator: the only package that imports ``requests`` (and ``urllib3``).

One keep-alive ``requests.Session`` per host (scheme + authority), explicit (connect, read)
timeouts on every request, and an optional whole-request deadline so a server that drips bytes
cannot hang a run. ``requests`` exceptions are translated here into :mod:`orchestrator.errors`
types; nothing above this module sees a ``requests`` type.

Uploading: a :class:`FileWindow` body streams one chunk straight from the open file, a socket
block at a time, so memory does not grow with the chunk or the file (a whole ``run`` process
peaks at 54 MiB for a 10 MB or a 4 GB video, benchmarks/README.md). Blocks are
:data:`SEND_BLOCK` bytes: urllib3 sends file bodies in 16 KiB blocks by default, which costs
throughput (see benchmarks/README.md).

The whole-request deadline (``Timeouts.total``) is enforced by a watchdog that shuts the
connection's socket down when the deadline passes: per-operation socket timeouts alone cannot
stop a server that reads or answers one byte at a time. One watchdog thread per transport serves
every request (a timer thread per request cost about 0.3 ms each, benchmarks/README.md).

Security: a plain ``http://`` URL to a host that is not this machine is refused before any
connection (:class:`PlainHttpError`: a bearer token, or an upload URL's own token, would cross
the network in clear), and a certificate that does not verify is a :class:`CertificateError`,
never a retried outage. Proxies (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``) and a private CA
(``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``) come from :func:`orchestrator.config.load_network`;
the sessions keep ``trust_env`` off so requests never reads ``.netrc`` (whose credentials it
would attach), and loopback never goes through a proxy.

URLs can carry secrets (an ``upload_url`` authorises by its query string), so every URL that
could reach a message goes through :func:`redact_url`, and translated exceptions are raised
``from None``: the original ``requests`` exception text contains the full URL.

By job: ``interface`` (the :class:`Transport` protocol, timeouts, answers, file windows),
``session`` (the session factory, proxies and TLS, :class:`HttpTransport`), ``deadline`` (the
watchdog), ``translate`` (library exceptions into ours). Everything callers use is named here.
"""

from __future__ import annotations

from orchestrator.transport.interface import (
    Body,
    FileWindow,
    HttpResponse,
    Timeouts,
    Transport,
    redact_url,
)
from orchestrator.transport.session import POOL_SIZE, SEND_BLOCK, USER_AGENT, HttpTransport

__all__ = [
    "POOL_SIZE",
    "SEND_BLOCK",
    "USER_AGENT",
    "Body",
    "FileWindow",
    "HttpResponse",
    "HttpTransport",
    "Timeouts",
    "Transport",
    "redact_url",
]
