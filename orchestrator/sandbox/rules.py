"""TikTok's rules as pure functions: chunk plans, text lengths, Content-Range, PKCE, redirects.

No state, no I/O, no clock: each check takes values and says what is wrong with them. The
endpoint code decides which error code a problem becomes. Numbers are from ``tiktok-api.md``
§5 and §10 (we enforce both readings of "MB": 5 MiB lower bound, 64 MB upper bound).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

MIN_CHUNK_SIZE = 5 * 1024 * 1024  # 5,242,880: "5 MB" read as MiB, the stricter lower bound
MAX_CHUNK_SIZE = 64_000_000  # "64 MB" read as 10^6, the stricter upper bound
MAX_WHOLE_UPLOAD = 64_000_000  # a single-chunk upload; real clients saw 66,259,900 refused
MAX_LAST_CHUNK = 128_000_000
MAX_CHUNK_COUNT = 1000
MAX_VIDEO_SIZE = 4 * 1024**3  # "4 GB": refused above 4 GiB ...
STRICT_MAX_VIDEO_SIZE = 4_000_000_000  # ... and flagged above 4 * 10^9 (the other reading)

MAX_CAPTION_UNITS = 2200
MAX_PHOTO_TITLE_UNITS = 90
MAX_PHOTO_DESCRIPTION_UNITS = 4000
MAX_PHOTO_IMAGES = 35

VIDEO_CONTENT_TYPES = ("video/mp4", "video/quicktime", "video/webm")

# The one message TikTok is observed to give for a refused chunk plan (tiktok-api.md §4). Every
# plan problem answers with it; what exactly is wrong goes to the violations list only.
MSG_CHUNK_SIZE = "The chunk size is invalid"
MSG_PKCE = "Code verifier or code challenge is invalid."

# Redirect URIs of a Web app (tiktok-api.md §2.1).
MAX_WEB_REDIRECT_URIS = 10
MAX_REDIRECT_URI_LENGTH = 511  # "under 512 characters"
LOOPBACK_CONNECT_PATH = "/connect/callback/"

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_HEX_CHALLENGE = re.compile(r"[0-9a-f]{64}")
_BASE64URL_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


@dataclass(frozen=True)
class PlanProblem:
    """Why a chunk plan is refused: TikTok's message, and a detail for the violations list."""

    message: str
    detail: str


@dataclass(frozen=True)
class ChunkPlan:
    """An accepted plan: sizes of every chunk follow from these three numbers."""

    video_size: int
    chunk_size: int
    total_chunk_count: int

    def chunk_range(self, index: int) -> tuple[int, int]:
        """First and last byte (inclusive) of chunk ``index`` (0-based); the last takes the rest."""
        first = index * self.chunk_size
        if index == self.total_chunk_count - 1:
            return first, self.video_size - 1
        return first, first + self.chunk_size - 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_chunk_plan(
    video_size: object, chunk_size: object, total_chunk_count: object
) -> PlanProblem | None:
    """What is wrong with a FILE_UPLOAD plan under §5 and §10, or None when TikTok accepts it."""
    if not _is_int(video_size) or not _is_int(chunk_size) or not _is_int(total_chunk_count):
        return PlanProblem(
            MSG_CHUNK_SIZE, "video_size, chunk_size and total_chunk_count must be ints"
        )
    assert isinstance(video_size, int)
    assert isinstance(chunk_size, int)
    assert isinstance(total_chunk_count, int)
    if video_size <= 0 or video_size > MAX_VIDEO_SIZE:
        return PlanProblem(
            MSG_CHUNK_SIZE, f"video_size {video_size:,} is outside 1..{MAX_VIDEO_SIZE:,}"
        )
    if chunk_size <= 0:
        return PlanProblem(MSG_CHUNK_SIZE, f"chunk_size {chunk_size:,} is not positive")
    if not 1 <= total_chunk_count <= MAX_CHUNK_COUNT:
        return PlanProblem(
            MSG_CHUNK_SIZE,
            f"total_chunk_count {total_chunk_count} is outside 1..{MAX_CHUNK_COUNT}",
        )
    if total_chunk_count == 1 and video_size > MAX_WHOLE_UPLOAD:
        # §5 rule 3: a video over 64 MB must be split (K >= 2).
        return PlanProblem(
            MSG_CHUNK_SIZE,
            f"one chunk of {video_size:,} bytes exceeds {MAX_WHOLE_UPLOAD:,}: split it",
        )
    if total_chunk_count == 1 and chunk_size == video_size:
        return None
    if chunk_size > video_size:
        return PlanProblem(
            MSG_CHUNK_SIZE, f"chunk_size {chunk_size:,} exceeds video_size {video_size:,}"
        )
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        return PlanProblem(
            MSG_CHUNK_SIZE,
            f"chunk_size {chunk_size:,} is outside {MIN_CHUNK_SIZE:,}..{MAX_CHUNK_SIZE:,}",
        )
    floor_count = video_size // chunk_size
    if total_chunk_count != floor_count:
        ceil_count = -(-video_size // chunk_size)
        kind = "a ceil plan" if total_chunk_count == ceil_count else "a wrong count"
        return PlanProblem(
            MSG_CHUNK_SIZE,
            f"total_chunk_count {total_chunk_count} is {kind}: floor({video_size:,} / "
            f"{chunk_size:,}) = {floor_count}",
        )
    # K = 1 with chunk_size < video_size is fine: the last (only) chunk holds the rest, which
    # the rule below bounds like any last chunk (§5 rule 2); §5 has no stricter rule for it.
    last = video_size - (total_chunk_count - 1) * chunk_size
    if last >= 2 * chunk_size or last > MAX_LAST_CHUNK:
        return PlanProblem(MSG_CHUNK_SIZE, f"the last chunk of {last:,} bytes is too large")
    return None


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units, as TikTok counts captions (an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def parse_content_range(value: str | None) -> tuple[int, int, int] | None:
    """``bytes FIRST-LAST/TOTAL`` as three ints, or None when malformed or inverted."""
    if value is None:
        return None
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        return None
    first, last, total = (int(group) for group in match.groups())
    if last < first or last >= total:
        return None
    return first, last, total


def media_type(content_type: str | None) -> str | None:
    """The bare media type of a Content-Type header (parameters and case dropped)."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def valid_code_verifier(verifier: str) -> bool:
    """43 to 128 characters from ``[A-Za-z0-9-._~]`` (RFC 7636 §4.1)."""
    return _VERIFIER.fullmatch(verifier) is not None


def hex_challenge(verifier: str) -> str:
    """TikTok's desktop challenge: lowercase hex of SHA-256 of the verifier (not base64url)."""
    return hashlib.sha256(verifier.encode("ascii")).hexdigest()


def s256_challenge(verifier: str) -> str:
    """RFC 7636's S256 challenge: base64url of SHA-256 of the verifier, without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def looks_like_s256_challenge(challenge: str) -> bool:
    """Whether a challenge has RFC 7636's S256 shape (43 base64url characters, no padding)."""
    return _BASE64URL_CHALLENGE.fullmatch(challenge) is not None


def web_redirect_problem(uri: str, *, allow_loopback_http: bool = False) -> str | None:
    """What keeps ``uri`` from being a Web app's redirect URI (§2.1), or None.

    ``allow_loopback_http`` is the sandbox-only allowance for tests: ``http`` on 127.0.0.1 or
    localhost, with a port, at ``/connect/callback/``.
    """
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        return f"is {len(uri)} characters; the limit is {MAX_REDIRECT_URI_LENGTH}"
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return "is not a URL"
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        return "must be static: no query, no fragment"
    if not parts.hostname:
        return "must be absolute"
    if parts.scheme == "https":
        return None
    if (
        allow_loopback_http
        and parts.scheme == "http"
        and parts.hostname in ("127.0.0.1", "localhost")
        and port is not None
        and parts.path.startswith("/")
        and parts.path.endswith(LOOPBACK_CONNECT_PATH)
    ):
        return None
    return "must be https (a loopback http address only with the sandbox's test allowance)"


def looks_like_hex_challenge(challenge: str) -> bool:
    """Whether a challenge has the shape TikTok expects (64 lowercase hex characters)."""
    return _HEX_CHALLENGE.fullmatch(challenge) is not None


def is_loopback_redirect(uri: str) -> bool:
    """An ``http`` URI on ``127.0.0.1`` or ``localhost`` with an explicit port (a Desktop app)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "http"
        and parts.hostname in ("127.0.0.1", "localhost")
        and port is not None
        and not parts.fragment
    )


def is_https_url(url: object) -> bool:
    """An absolute ``https`` URL with a host."""
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(parts.netloc)
