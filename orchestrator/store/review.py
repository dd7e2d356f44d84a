"""Creator review in the state database: posts waiting for their creator, review links, and the
creator's answer (consent or decline) written to the journal.

Theory of operation (the rules themselves are ``orchestrator/review.py``):

- A run that reaches a ``review: creator`` entry without consent calls
  :meth:`ReviewStore.await_review`: the journal row says ``awaiting_review`` (event
  ``AwaitingReview``) and ``review_items`` keeps what the review page shows of the post.
- The operator makes a link (:meth:`ReviewStore.create_link`): a random token of >= 128 bits,
  kept only as its SHA-256, bound to one creator and the posts waiting for them, valid until
  ``expires_at`` and opened once (:meth:`ReviewStore.open_link`; the browser then holds the
  review in its session).
- Pressing Post writes a ``Consented`` journal event (:meth:`ReviewStore.consent`: who, when,
  the media digest the creator saw and the exact settings); the row stays ``awaiting_review``
  until a run posts it with those settings. "Not this one" moves the row to ``declined`` with
  the creator's note (terminal). Both happen once: a second answer finds the post answered.

It only reads and writes rows: it must not talk to TikTok or judge the creator's choices.
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from orchestrator.clock import Clock
from orchestrator.errors import UsageError
from orchestrator.store.db import StoreDatabase
from orchestrator.store.journal import EntryMeta, EntryState, Fence
from orchestrator.store.web import digests_match, new_secret, secret_digest

DEFAULT_LINK_LIFETIME: Final = 3 * 86400.0
"""Seconds a review link stays valid (three days: a week of posts is reviewed in one sitting)."""
CONSENTED: Final = "Consented"
DECLINED: Final = "Declined"
AWAITING: Final = "AwaitingReview"


@dataclass(frozen=True)
class ReviewItem:
    """What the review page shows of a post waiting for its creator."""

    identity: str
    user_id: str
    kind: str  # "file" | "video_url" | "photo"
    media: tuple[str, ...]
    """A file's path, a video URL, or the photo URLs."""
    caption: str
    duration_s: float | None
    fingerprint: str
    """The media digest the creator confirms (a file's content fingerprint)."""


@dataclass(frozen=True)
class ReviewChoices:
    """What the creator set on the review page: the post's settings, exactly as sent."""

    caption: str
    privacy_level: str
    allow_comment: bool
    allow_duet: bool
    allow_stitch: bool
    brand_organic_toggle: bool
    brand_content_toggle: bool


@dataclass(frozen=True)
class Consent:
    """The creator's confirmation of one post (a ``Consented`` journal event)."""

    open_id: str
    at: float
    media_digest: str
    choices: ReviewChoices
    declaration: str
    """The declaration the page showed above the Post button."""

    def as_json(self) -> dict[str, Any]:
        return {
            "open_id": self.open_id,
            "at": self.at,
            "media_digest": self.media_digest,
            "settings": asdict(self.choices),
            "declaration": self.declaration,
        }

    @classmethod
    def from_json(cls, detail: dict[str, Any]) -> Consent:
        return cls(
            open_id=str(detail["open_id"]),
            at=float(detail["at"]),
            media_digest=str(detail["media_digest"]),
            choices=ReviewChoices(**detail["settings"]),
            declaration=str(detail["declaration"]),
        )


class LinkState(enum.StrEnum):
    """Where a review link stands."""

    OPEN = "open"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ReviewLink:
    """A review link's record (never its token)."""

    id: str
    open_id: str
    identities: tuple[str, ...]
    created_at: float
    expires_at: float
    used_at: float | None

    def state(self, now: float) -> LinkState:
        if self.used_at is not None:
            return LinkState.USED
        if now >= self.expires_at:
            return LinkState.EXPIRED
        return LinkState.OPEN


@dataclass(frozen=True)
class NewReviewLink:
    """A link just made, with its one-time token (shown once, never stored)."""

    link: ReviewLink
    token: str


_LOCKED_ROW: Final = "SELECT state, user_id FROM journal WHERE identity = ?"
"""A journal row read inside a write transaction (the backend's lock suffix is appended)."""

_SELECT_LINKS = (
    "SELECT id, token_hash, open_id, identities, created_at, expires_at, used_at FROM review_links"
)


def _link_from_row(row: Any) -> ReviewLink:
    return ReviewLink(
        id=row["id"],
        open_id=row["open_id"],
        identities=tuple(json.loads(row["identities"])),
        created_at=float(row["created_at"]),
        expires_at=float(row["expires_at"]),
        used_at=None if row["used_at"] is None else float(row["used_at"]),
    )


def _item_from_row(row: Any) -> ReviewItem:
    snapshot = json.loads(row["snapshot"])
    return ReviewItem(
        identity=row["identity"],
        user_id=row["user_id"],
        kind=snapshot["kind"],
        media=tuple(snapshot["media"]),
        caption=snapshot["caption"],
        duration_s=snapshot["duration_s"],
        fingerprint=snapshot["fingerprint"],
    )


class ReviewStore:
    """Posts awaiting review, review links, and the creators' answers (module docstring)."""

    def __init__(self, database: StoreDatabase, *, clock: Clock) -> None:
        self.database = database
        self._clock = clock

    # -- posts waiting --

    def await_review(
        self, meta: EntryMeta, item: ReviewItem, *, fence: Fence | None = None
    ) -> None:
        """Journal the entry ``awaiting_review`` and keep what its review page shows (checked
        against a shared run's ``fence`` like every journal write)."""
        now = self._clock.time()
        snapshot = json.dumps(
            {
                "kind": item.kind,
                "media": list(item.media),
                "caption": item.caption,
                "duration_s": item.duration_s,
                "fingerprint": item.fingerprint,
            },
            ensure_ascii=False,
        )
        with self.database.transaction() as connection:
            if fence is not None:
                fence.check(connection)
            row = connection.execute(
                _LOCKED_ROW + self.database.lock_suffix,
                (meta.identity,),
            ).fetchone()
            if row is None:
                connection.execute(
                    "INSERT INTO journal (identity, entry_id, user_id, mode, kind, source, "
                    "request_digest, media_fingerprint, state, attempts, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                    (
                        meta.identity,
                        meta.entry_id,
                        meta.user_id,
                        meta.mode,
                        meta.kind,
                        meta.source,
                        meta.request_digest,
                        meta.fingerprint,
                        EntryState.AWAITING_REVIEW.value,
                        now,
                        now,
                    ),
                )
            else:
                connection.execute(
                    "UPDATE journal SET state = ?, error_code = NULL, error_message = NULL, "
                    "error_log_id = NULL, error_retryable = NULL, error_hint = NULL, "
                    "deferred_until = NULL, request_digest = ?, media_fingerprint = ?, "
                    "updated_at = ? WHERE identity = ?",
                    (
                        EntryState.AWAITING_REVIEW.value,
                        meta.request_digest,
                        meta.fingerprint,
                        now,
                        meta.identity,
                    ),
                )
            last = connection.execute(
                "SELECT event FROM journal_events WHERE identity = ? AND event IN (?, ?) "
                "ORDER BY id DESC LIMIT 1",
                (meta.identity, CONSENTED, AWAITING),
            ).fetchone()
            # A consent the run did not take (the media changed since) is void: a new
            # AwaitingReview event comes after it, so the creator reviews the post again.
            consented = last is not None and last["event"] == CONSENTED
            if row is None or row["state"] != EntryState.AWAITING_REVIEW.value or consented:
                _event(connection, meta.identity, AWAITING, {"fingerprint": item.fingerprint}, now)
            connection.execute(
                "INSERT INTO review_items (identity, user_id, snapshot, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (identity) DO UPDATE SET "
                "user_id = excluded.user_id, snapshot = excluded.snapshot",
                (meta.identity, meta.user_id, snapshot, now),
            )

    def item(self, identity: str) -> ReviewItem | None:
        row = self.database.fetch_one(
            "SELECT identity, user_id, snapshot FROM review_items WHERE identity = ?", (identity,)
        )
        return None if row is None else _item_from_row(row)

    def waiting(self, open_id: str) -> list[ReviewItem]:
        """The creator's posts awaiting review without an answer yet, oldest first."""
        rows = self.database.fetch_all(
            "SELECT r.identity AS identity, r.user_id AS user_id, r.snapshot AS snapshot "
            "FROM review_items AS r JOIN journal AS j ON j.identity = r.identity "
            "WHERE r.user_id = ? AND j.state = ? ORDER BY r.created_at, r.identity",
            (open_id, EntryState.AWAITING_REVIEW.value),
        )
        items = [_item_from_row(row) for row in rows]
        return [item for item in items if self.consent(item.identity) is None]

    # -- answers --

    def consent(self, identity: str) -> Consent | None:
        """The creator's confirmation of the post as it awaits review now, if given."""
        rows = self.database.fetch_all(
            "SELECT event, detail FROM journal_events WHERE identity = ? AND event IN (?, ?) "
            "ORDER BY id DESC LIMIT 1",
            (identity, CONSENTED, AWAITING),
        )
        if not rows or rows[0]["event"] != CONSENTED:
            return None
        return Consent.from_json(json.loads(rows[0]["detail"]))

    def record_consent(self, identity: str, consent: Consent) -> bool:
        """Write the creator's confirmation; False if the post is no longer awaiting review or
        was answered already (a second tab, a replayed form)."""
        return self._answer(identity, consent.open_id, CONSENTED, consent.as_json())

    def decline(self, identity: str, open_id: str, note: str) -> bool:
        """The creator declined the post: ``declined`` with their note (terminal); False if it
        was answered already or is no longer awaiting review."""
        return self._answer(identity, open_id, DECLINED, {"open_id": open_id, "note": note})

    def _answer(self, identity: str, open_id: str, event: str, detail: dict[str, Any]) -> bool:
        now = self._clock.time()
        with self.database.transaction() as connection:
            row = connection.execute(
                _LOCKED_ROW + self.database.lock_suffix,
                (identity,),
            ).fetchone()
            if row is None or row["state"] != EntryState.AWAITING_REVIEW.value:
                return False
            if row["user_id"] != open_id:
                return False
            last = connection.execute(
                "SELECT event FROM journal_events WHERE identity = ? AND event IN (?, ?) "
                "ORDER BY id DESC LIMIT 1",
                (identity, CONSENTED, AWAITING),
            ).fetchone()
            if last is not None and last["event"] == CONSENTED:
                return False
            if event == DECLINED:
                connection.execute(
                    "UPDATE journal SET state = ?, error_code = 'declined', error_message = ?, "
                    "error_retryable = 0, error_hint = ?, finished_at = ?, updated_at = ? "
                    "WHERE identity = ?",
                    (
                        EntryState.DECLINED.value,
                        f"the creator declined this post: {detail['note'] or '(no note)'}",
                        "give the entry a new id to offer it again",
                        now,
                        now,
                        identity,
                    ),
                )
            else:
                connection.execute(
                    "UPDATE journal SET updated_at = ? WHERE identity = ?", (now, identity)
                )
            _event(connection, identity, event, detail, now)
        return True

    # -- links --

    def create_link(
        self,
        open_id: str,
        identities: Sequence[str],
        *,
        lifetime: float = DEFAULT_LINK_LIFETIME,
    ) -> NewReviewLink:
        """A link for ``open_id`` to review ``identities``; the token is in the result only."""
        if not identities:
            raise UsageError(
                f"{open_id} has no post awaiting review",
                hint="a run journals a `review: creator` post awaiting_review first",
            )
        if lifetime <= 0:
            raise UsageError("a review link's lifetime must be positive", hint="e.g. 3 days")
        token = new_secret()
        now = self._clock.time()
        link = ReviewLink(
            id=secrets.token_hex(6),
            open_id=open_id,
            identities=tuple(identities),
            created_at=now,
            expires_at=now + lifetime,
            used_at=None,
        )
        with self.database.transaction() as connection:
            connection.execute(
                "INSERT INTO review_links (id, token_hash, open_id, identities, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    link.id,
                    secret_digest(token),
                    open_id,
                    json.dumps(list(link.identities)),
                    now,
                    link.expires_at,
                ),
            )
        return NewReviewLink(link=link, token=token)

    def find_link(self, token: str) -> ReviewLink | None:
        """The link a presented token is (whatever its state), or ``None``."""
        digest = secret_digest(token)
        row = self.database.fetch_one(_SELECT_LINKS + " WHERE token_hash = ?", (digest,))
        if row is None or not digests_match(str(row["token_hash"]), digest):
            return None
        return _link_from_row(row)

    def get_link(self, link_id: str) -> ReviewLink | None:
        row = self.database.fetch_one(_SELECT_LINKS + " WHERE id = ?", (link_id,))
        return None if row is None else _link_from_row(row)

    def open_link(self, link_id: str) -> bool:
        """Use an open link, once: False if it was used or expired meanwhile."""
        now = self._clock.time()
        with self.database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE review_links SET used_at = ? WHERE id = ? AND used_at IS NULL "
                "AND expires_at > ?",
                (now, link_id, now),
            )
            return bool(cursor.rowcount)


def _event(connection: Any, identity: str, event: str, detail: dict[str, Any], now: float) -> None:
    connection.execute(
        "INSERT INTO journal_events (identity, run_id, at, event, detail) VALUES (?, ?, ?, ?, ?)",
        (identity, "review", now, event, json.dumps(detail, ensure_ascii=False)),
    )
