"""Everything the simulated TikTok remembers, behind one lock, on the injected clock.

Users (from the config), authorization codes, access and refresh tokens, publishes and their
uploads, the per-user sliding rate windows, call counters, scheduled publish failures and the
protocol violations seen. Endpoint modules (``oauth``, the ``posting`` families, ``upload``)
hold the rules and mutate this state under :attr:`SandboxState.lock`; this module holds the
data and the helpers every endpoint shares (authentication, scopes, rate windows — counted by
``rates`` —, caps, inspection).

Expiries use ``clock.time()``; rate windows use ``clock.monotonic()``. No I/O happens here and
the lock is never held while a request body streams in.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from orchestrator.clock import Clock
from orchestrator.sandbox.config import (
    SandboxConfig,
    SandboxUser,
)
from orchestrator.sandbox.messages import Reply, new_log_id, posting_error
from orchestrator.sandbox.rates import RateWindows
from orchestrator.sandbox.rules import ChunkPlan

CAP_WINDOW_SECONDS = 86400.0

# Publish statuses (tiktok-api.md §7).
PROCESSING_UPLOAD = "PROCESSING_UPLOAD"
PROCESSING_DOWNLOAD = "PROCESSING_DOWNLOAD"
SEND_TO_USER_INBOX = "SEND_TO_USER_INBOX"
PUBLISH_COMPLETE = "PUBLISH_COMPLETE"
FAILED = "FAILED"
TERMINAL_STATUSES = (SEND_TO_USER_INBOX, PUBLISH_COMPLETE, FAILED)


@dataclass(frozen=True)
class PublishRecord:
    """What the sandbox knows about one publish_id (a snapshot for tests).

    ``mode`` is "direct", "inbox" or "photo" (``post_mode`` tells a photo's DIRECT_POST from
    MEDIA_UPLOAD); sizes are None for PULL_FROM_URL; ``sha256`` is the hex digest of every byte
    received, in order, once complete; ``completed`` means the last byte (or the URL init) was
    accepted, so TikTok publishes on its own; ``status`` is what the last status fetch answered.
    """

    publish_id: str
    open_id: str
    mode: str
    source: str
    post_info: dict[str, Any]
    video_size: int | None
    chunk_size: int | None
    total_chunk_count: int | None
    chunks_received: int
    bytes_received: int
    sha256: str | None
    completed: bool
    status: str
    fail_reason: str | None
    post_ids: list[int]
    post_mode: str = "DIRECT_POST"
    source_info: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    upload_url_expires_at: float | None = None
    posted_from_inbox: bool = False


@dataclass
class AccessToken:
    value: str
    open_id: str
    scopes: tuple[str, ...]
    expires_at: float
    revoked: bool = False
    presented: bool = False  # some request carried it: the client has it


@dataclass
class RefreshToken:
    value: str
    open_id: str
    scopes: tuple[str, ...]
    expires_at: float
    used: bool = False
    revoked: bool = False
    presented: bool = False  # some request carried it: the client has it
    successor: tuple[str, str] | None = None  # (access, refresh) its refresh issued


@dataclass
class AuthorizationCode:
    value: str
    open_id: str
    scopes: tuple[str, ...]
    redirect_uri: str
    code_challenge: str
    expires_at: float
    used: bool = False
    successor: tuple[str, str] | None = None  # (access, refresh) its exchange issued


@dataclass
class Publish:
    """A publish being built (mutable; guarded by the state lock)."""

    publish_id: str
    open_id: str
    mode: str
    post_mode: str
    source: str
    post_info: dict[str, Any]
    source_info: dict[str, Any]
    created_at: float
    plan: ChunkPlan | None = None
    upload_id: str | None = None
    upload_token: str | None = None
    url_expires_at: float | None = None
    chunks_received: int = 0
    bytes_received: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    sha256: str | None = None
    completed: bool = False
    status: str = PROCESSING_UPLOAD
    fail_reason: str | None = None
    planned_failure: str | None = None
    post_ids: list[int] = field(default_factory=list)
    polls_after_complete: int = 0
    # The connection whose last chunk PUT got 416: its next PUT must resync. (Another
    # connection may be a new process that never read the 416: it cannot be held to it.)
    refused_416_to: str | None = None
    posted_from_inbox: bool = False

    @property
    def counts_as_direct(self) -> bool:
        return self.post_mode == "DIRECT_POST"

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def record(self) -> PublishRecord:
        plan = self.plan
        return PublishRecord(
            publish_id=self.publish_id,
            open_id=self.open_id,
            mode=self.mode,
            source=self.source,
            post_info=dict(self.post_info),
            video_size=plan.video_size if plan else None,
            chunk_size=plan.chunk_size if plan else None,
            total_chunk_count=plan.total_chunk_count if plan else None,
            chunks_received=self.chunks_received,
            bytes_received=self.bytes_received,
            sha256=self.sha256,
            completed=self.completed,
            status=self.status,
            fail_reason=self.fail_reason,
            post_ids=list(self.post_ids),
            post_mode=self.post_mode,
            source_info=dict(self.source_info),
            created_at=self.created_at,
            upload_url_expires_at=self.url_expires_at,
            posted_from_inbox=self.posted_from_inbox,
        )


class SandboxState:
    """The simulated TikTok's memory. Every method is thread-safe."""

    def __init__(self, config: SandboxConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.base_url = ""  # set by the server once it has a port
        self._changed_users: dict[str, SandboxUser] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.client_tokens: list[str] = []  # client_credentials grants (`doctor`)
        self.publishes: dict[str, Publish] = {}
        self.uploads: dict[str, str] = {}  # upload_id -> publish_id
        self.creator_info_seen: set[str] = set()
        self.digests: dict[tuple[str, str], str] = {}  # (open_id, sha256) -> publish_id
        self._rates = RateWindows()
        self._caps_told: set[tuple[str, str, int]] = set()  # (open_id, mode, client generation)
        self.client_generation = 0
        self._calls: Counter[str] = Counter()
        self._violations: list[str] = []
        self._server_errors: list[str] = []
        self._planned_failures: dict[str, deque[str]] = {}
        self._serial = itertools.count(1)
        self._post_serial = itertools.count(7_300_000_000_000_000_001)

    # -- time and ids ---------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.time()

    def log_id(self) -> str:
        return new_log_id(self.now())

    def next_serial(self) -> int:
        with self.lock:
            return next(self._serial)

    def next_post_id(self) -> int:
        with self.lock:
            return next(self._post_serial)

    @staticmethod
    def random_token(prefix: str) -> str:
        return f"{prefix}{secrets.token_urlsafe(32)}"

    # -- users ----------------------------------------------------------------------------

    def user(self, open_id: str) -> SandboxUser | None:
        with self.lock:
            changed = self._changed_users.get(open_id)
        return changed if changed is not None else self.config.user(open_id)

    def change_user(self, user: SandboxUser) -> None:
        if self.config.user(user.open_id) is None:
            raise ValueError(f"{user.open_id!r} is not a sandbox user")
        with self.lock:
            self._changed_users[user.open_id] = user

    # -- calls, violations, errors -------------------------------------------------------

    def count_call(self, endpoint: str) -> int:
        """Count one request to ``endpoint``; its 1-based call number."""
        with self.lock:
            self._calls[endpoint] += 1
            return self._calls[endpoint]

    def calls(self, endpoint: str | None = None) -> int:
        with self.lock:
            if endpoint is None:
                return sum(self._calls.values())
            return self._calls[endpoint]

    def call_counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self._calls)

    def violation(self, endpoint: str, text: str) -> None:
        """Record something a strict TikTok refuses or its integration rules forbid."""
        with self.lock:
            self._violations.append(f"{endpoint}: {text}")

    def violations(self) -> list[str]:
        with self.lock:
            return list(self._violations)

    def server_error(self, text: str) -> None:
        """Record a bug in the sandbox itself (an unexpected exception while answering)."""
        with self.lock:
            self._server_errors.append(text)

    def server_errors(self) -> list[str]:
        with self.lock:
            return list(self._server_errors)

    # -- tokens ---------------------------------------------------------------------------

    def issue_tokens(self, open_id: str, scopes: tuple[str, ...]) -> dict[str, Any]:
        """A new access + refresh token pair; the TikTok token response."""
        with self.lock:
            now = self.now()
            access = AccessToken(
                self.random_token("act."), open_id, scopes, now + self.config.access_token_ttl
            )
            refresh = RefreshToken(
                self.random_token("rft."), open_id, scopes, now + self.config.refresh_token_ttl
            )
            self.access_tokens[access.value] = access
            self.refresh_tokens[refresh.value] = refresh
            return {
                "access_token": access.value,
                "expires_in": self.config.access_token_ttl,
                "open_id": open_id,
                "refresh_token": refresh.value,
                "refresh_expires_in": self.config.refresh_token_ttl,
                "scope": ",".join(scopes),
                "token_type": "Bearer",
            }

    def successor_seen(self, successor: tuple[str, str] | None) -> bool:
        """Whether the client has shown it received this token pair (it presented either)."""
        if successor is None:
            return False
        with self.lock:
            access = self.access_tokens.get(successor[0])
            refresh = self.refresh_tokens.get(successor[1])
            return bool((access and access.presented) or (refresh and refresh.presented))

    def unclaimed_rotations(self) -> list[str]:
        """Users with a refresh answered but never claimed (``Sandbox.unclaimed_rotations``)."""
        with self.lock:
            return sorted(
                {
                    token.open_id
                    for token in self.refresh_tokens.values()
                    if token.used and not self.successor_seen(token.successor)
                }
            )

    def live_access_token(self, value: str) -> AccessToken | None:
        with self.lock:
            token = self.access_tokens.get(value)
            if token is not None:
                token.presented = True
            if token is None or token.revoked or self.now() >= token.expires_at:
                return None
            return token

    def revoke_user(self, open_id: str) -> None:
        """Kill every access and refresh token of ``open_id`` (the user removed the app)."""
        with self.lock:
            for access in self.access_tokens.values():
                if access.open_id == open_id:
                    access.revoked = True
            for refresh in self.refresh_tokens.values():
                if refresh.open_id == open_id:
                    refresh.revoked = True

    def expire_access_tokens(self, open_id: str) -> None:
        with self.lock:
            now = self.now()
            for access in self.access_tokens.values():
                if access.open_id == open_id:
                    access.expires_at = min(access.expires_at, now)

    def authenticate(self, endpoint: str, bearer: str | None) -> AccessToken | Reply:
        """The live token of an ``Authorization: Bearer`` header, or the 401 answer."""
        value = None
        if bearer is not None:
            scheme, _, rest = bearer.strip().partition(" ")
            if scheme.lower() == "bearer" and rest.strip():
                value = rest.strip()
        if value is None:
            self.violation(endpoint, "request without an 'Authorization: Bearer' header")
            return posting_error(
                401,
                "access_token_invalid",
                "The access token is invalid or not found in the request.",
                self.log_id(),
            )
        token = self.live_access_token(value)
        if token is None:
            return posting_error(
                401,
                "access_token_invalid",
                "The access token is invalid or not found in the request.",
                self.log_id(),
            )
        return token

    def require_scope(self, endpoint: str, token: AccessToken, *any_of: str) -> Reply | None:
        """None when the token carries one of ``any_of``; else 401 ``scope_not_authorized``."""
        if any(scope in token.scopes for scope in any_of):
            return None
        wanted = " or ".join(any_of)
        self.violation(endpoint, f"token of {token.open_id} lacks scope {wanted}")
        return posting_error(
            401,
            "scope_not_authorized",
            f"The user did not authorize the scope required for this request ({wanted}).",
            self.log_id(),
        )

    def new_client(self) -> None:
        """Requests from now on come from another client process (see ``Sandbox.new_client``)."""
        with self.lock:
            self.client_generation += 1

    def tell_cap(self, open_id: str, mode: str) -> bool:
        """This client is now told ``open_id``'s ``mode`` cap ("direct" / "inbox") is reached;
        whether it had been told already (a further init for it is then a violation)."""
        with self.lock:
            key = (open_id, mode, self.client_generation)
            told = key in self._caps_told
            self._caps_told.add(key)
            return told

    def forget_cap(self, open_id: str, mode: str) -> None:
        """creator_info answered that ``open_id`` may post: an earlier cap answer is past."""
        with self.lock:
            self._caps_told.discard((open_id, mode, self.client_generation))

    def take_rate(self, endpoint: str, token: AccessToken) -> Reply | None:
        """Count this request in the user's window; 429 when it is full (see ``rates``)."""
        if not self.config.rate_limits:
            return None
        with self.lock:
            full, violations = self._rates.take(
                endpoint, token.open_id, self.client_generation, self.clock.monotonic()
            )
            for text in violations:
                self.violation(endpoint, text)
        if not full:
            return None
        return posting_error(
            429,
            "rate_limit_exceeded",
            "API rate limit was exceeded, only retry after some time.",
            self.log_id(),
        )

    # -- publishes ------------------------------------------------------------------------

    def plan_failure(self, open_id: str, fail_reason: str) -> None:
        with self.lock:
            self._planned_failures.setdefault(open_id, deque()).append(fail_reason)

    def take_planned_failure(self, open_id: str) -> str | None:
        with self.lock:
            queue = self._planned_failures.get(open_id)
            return queue.popleft() if queue else None

    def add_publish(self, publish: Publish) -> None:
        with self.lock:
            publish.planned_failure = self.take_planned_failure(publish.open_id)
            self.publishes[publish.publish_id] = publish
            if publish.upload_id is not None:
                self.uploads[publish.upload_id] = publish.publish_id

    def recent_publishes(self, open_id: str) -> list[Publish]:
        """``open_id``'s publishes of the last 24 hours."""
        with self.lock:
            since = self.now() - CAP_WINDOW_SECONDS
            return [
                p for p in self.publishes.values() if p.open_id == open_id and p.created_at > since
            ]

    def direct_posts_today(self, open_id: str) -> int:
        return sum(1 for p in self.recent_publishes(open_id) if p.counts_as_direct)

    def pending_inbox_shares(self, open_id: str) -> int:
        return sum(
            1
            for p in self.recent_publishes(open_id)
            if not p.counts_as_direct and p.status != FAILED and not p.posted_from_inbox
        )

    def active_posting_users(self) -> set[str]:
        """Users who direct-posted through this app in the last 24 hours (the unaudited cap)."""
        with self.lock:
            since = self.now() - CAP_WINDOW_SECONDS
            return {
                p.open_id
                for p in self.publishes.values()
                if p.created_at > since and p.counts_as_direct
            }

    def issued_secrets(self) -> list[str]:
        """Every secret value issued so far, and the client secret (for secrets audits)."""
        with self.lock:
            values = [self.config.client_secret]
            values += list(self.codes)
            values += list(self.access_tokens)
            values += list(self.refresh_tokens)
            values += self.client_tokens
            values += [p.upload_token for p in self.publishes.values() if p.upload_token]
            return values

    def publish_records(self) -> list[PublishRecord]:
        with self.lock:
            return [p.record() for p in self.publishes.values()]
