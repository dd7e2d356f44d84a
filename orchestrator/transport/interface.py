"""What callers of the transport see: the :class:`Transport` interface, its timeouts, its
answer, and :class:`FileWindow`, the body that streams a chunk from an open file.

Must not: import ``requests`` or ``urllib3`` (a fake transport implements this interface
without them), or put a URL's query string where a message could show it (:func:`redact_url`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Protocol
from urllib.parse import urlsplit, urlunsplit

from orchestrator.errors import UploadError


@dataclass(frozen=True)
class Timeouts:
    """Timeouts in seconds: ``connect`` to open a connection, ``read`` between two socket reads,
    ``total`` (optional) for the whole exchange including the request body."""

    connect: float = 10.0
    read: float = 60.0
    total: float | None = None

    def __post_init__(self) -> None:
        if self.connect <= 0 or self.read <= 0 or (self.total is not None and self.total <= 0):
            raise ValueError("timeouts must be positive")


@dataclass(frozen=True)
class HttpResponse:
    """A complete HTTP answer: status, headers (lower-case names) and body bytes."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


class FileWindow:
    """Bytes ``[offset, offset + length)`` of an open binary file, as a request body.

    ``read(n)`` never returns more than ``n`` bytes nor anything past the window, so the body is
    streamed a block at a time and never held whole. ``len()`` is the window's length, which
    ``requests`` sends as Content-Length. ``on_read`` is told the size of each block handed to
    the connection (upload progress). A file that ends inside the window raises
    :class:`UploadError` rather than sending a short body.

    A window is read once; build a new one to send the same range again.
    """

    def __init__(
        self,
        file: BinaryIO,
        offset: int,
        length: int,
        *,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        if offset < 0 or length < 0:
            raise ValueError("a file window needs a non-negative offset and length")
        self._file = file
        self._offset = offset
        self._length = length
        self._sent = 0
        self._on_read = on_read
        self._positioned = False

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"FileWindow(offset={self._offset}, length={self._length}, sent={self._sent})"

    @property
    def sent(self) -> int:
        """Bytes handed to the connection so far."""
        return self._sent

    @property
    def exhausted(self) -> bool:
        """Whether every byte of the window has been handed to the connection."""
        return self._sent == self._length

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of what is left of the window (all of it for ``size < 0``)."""
        if not self._positioned:
            self._file.seek(self._offset)
            self._positioned = True
        left = self._length - self._sent
        wanted = left if size < 0 else min(size, left)
        if wanted <= 0:
            return b""
        block = self._file.read(wanted)
        # An unbuffered file may return short reads; keep reading until the block is whole.
        while len(block) < wanted:
            more = self._file.read(wanted - len(block))
            if not more:
                raise UploadError(
                    f"the file ended {self._offset + self._sent + len(block)} bytes in, inside "
                    f"a chunk that should reach byte {self._offset + self._length - 1}",
                    hint="the file changed while it was being uploaded; leave it alone",
                )
            block += more
        self._sent += len(block)
        if self._on_read is not None:
            self._on_read(len(block))
        return block


Body = bytes | FileWindow | IO[bytes] | None


class Transport(Protocol):
    """What the API client and OAuth code need of HTTP (tests may pass a fake)."""

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeouts: Timeouts | None = None,
    ) -> HttpResponse: ...

    def close(self) -> None: ...


def redact_url(url: str) -> str:
    """The URL with its query string hidden (upload URLs authorise by their query)."""
    parts = urlsplit(url)
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
