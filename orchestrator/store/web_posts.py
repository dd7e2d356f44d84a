"""Posts made over HTTP (``web_posts``): one per idempotency key, claimed by one worker at a time.

The row is the post's place between the API and the workers; its progress is the journal's.
Every move of ``state`` is one conditional UPDATE, so two ``serve`` instances on one store
(PostgreSQL) agree on it:

- ``queued`` -> ``started``: a worker claims it (:meth:`WebPostStore.claim`), under a lease;
- ``queued`` -> ``cancelled``: a DELETE (:meth:`WebPostStore.cancel`);
- ``started`` -> ``queued`` or stays ``started``: the worker lets go after its pass;
- ``started`` -> ``rejected``: the claimant found it no longer valid (its video removed or
  changed while it waited) and sent nothing for it (:meth:`WebPostStore.reject`, keeping the
  problems); no worker takes it again, and a DELETE may still cancel it.

This module must not print, log a secret, or read the environment.
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.clock import Clock
from orchestrator.errors import UsageError
from orchestrator.store.db import StoreDatabase
from orchestrator.store.web_secrets import digests_match


class PostState(enum.StrEnum):
    """Where a post stands between the API and the workers (its progress is the journal's).

    ``queued`` -> ``started`` when a worker first claims it, ``queued`` -> ``cancelled`` on a
    DELETE; both are conditional UPDATEs on ``state = 'queued'``, so when a DELETE races a
    claim (in another ``serve`` instance) exactly one of them wins. A started post is never
    queued again once the journal has it, so it can no longer be cancelled. ``started`` ->
    ``rejected`` when its claimant finds it no longer valid; a rejected post can be cancelled.
    """

    QUEUED = "queued"
    STARTED = "started"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


@dataclass(frozen=True)
class WebPost:
    """A post accepted by ``POST /api/v1/posts``; its progress is in the journal."""

    id: str
    idempotency_key: str
    body_digest: str
    entry: str
    """The manifest entry, JSON."""
    created_at: float
    cancelled_at: float | None
    upload_path: str | None
    state: PostState = PostState.QUEUED
    claimed_by: str | None = None
    """The worker running it now (while ``lease_until`` is in the future)."""
    lease_until: float | None = None
    rejected_at: float | None = None
    """When a worker set it aside, nothing sent (state ``rejected``)."""
    rejection: tuple[str, ...] = ()
    """Why: the problems the worker found in it then."""

    def user_id(self) -> str:
        """The creator the post is for (its entry's ``user_id``)."""
        entry = json.loads(self.entry)
        return str(entry.get("user_id", "")) if isinstance(entry, dict) else ""


class IdempotencyConflict(UsageError):
    """Raised when an Idempotency-Key is presented again with a different request body."""


_SELECT_POSTS = (
    "SELECT id, idempotency_key, body_digest, entry, created_at, cancelled_at, upload_path, "
    "state, claimed_by, lease_until, rejected_at, rejection FROM web_posts"
)


def _post_from_row(row: Any) -> WebPost:
    return WebPost(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        body_digest=row["body_digest"],
        entry=row["entry"],
        created_at=float(row["created_at"]),
        cancelled_at=None if row["cancelled_at"] is None else float(row["cancelled_at"]),
        upload_path=row["upload_path"],
        state=PostState(row["state"]),
        claimed_by=row["claimed_by"],
        lease_until=None if row["lease_until"] is None else float(row["lease_until"]),
        rejected_at=None if row["rejected_at"] is None else float(row["rejected_at"]),
        rejection=tuple(json.loads(row["rejection"])) if row["rejection"] else (),
    )


class WebPostStore:
    """Posts made over HTTP, one per idempotency key."""

    def __init__(self, database: StoreDatabase, *, clock: Clock) -> None:
        self.database = database
        self._clock = clock

    def add(
        self,
        idempotency_key: str,
        *,
        body_digest: str,
        entry: str,
        upload_path: str | None = None,
    ) -> tuple[WebPost, bool]:
        """The post for ``idempotency_key`` and whether this call made it. The same key with
        another body raises :class:`IdempotencyConflict`; concurrent calls make one post."""
        post_id = secrets.token_hex(8)
        with self.database.transaction() as connection:
            connection.execute(
                "INSERT INTO web_posts (id, idempotency_key, body_digest, entry, created_at, "
                "upload_path) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (idempotency_key) DO NOTHING",
                (post_id, idempotency_key, body_digest, entry, self._clock.time(), upload_path),
            )
            row = connection.execute(
                _SELECT_POSTS + " WHERE idempotency_key = ?",
                (idempotency_key,),
            ).fetchone()
        post = _post_from_row(row)
        if not digests_match(post.body_digest, body_digest):
            raise IdempotencyConflict(
                "this Idempotency-Key was used before with a different request",
                hint="send a new Idempotency-Key for a new post, or the same body to retry",
            )
        return post, post.id == post_id

    def get(self, post_id: str) -> WebPost | None:
        row = self.database.fetch_one(_SELECT_POSTS + " WHERE id = ?", (post_id,))
        return None if row is None else _post_from_row(row)

    def recent(self, limit: int = 100) -> list[WebPost]:
        rows = self.database.fetch_all(
            _SELECT_POSTS + " ORDER BY created_at DESC, id LIMIT ?",
            (limit,),
        )
        return [_post_from_row(row) for row in rows]

    def open_posts(self) -> list[WebPost]:
        """Every post neither cancelled nor set aside, oldest first (the worker's queue; the
        journal says which of them are done)."""
        rows = self.database.fetch_all(
            _SELECT_POSTS + " WHERE state IN ('queued', 'started') ORDER BY created_at, id"
        )
        return [_post_from_row(row) for row in rows]

    def rejected(self, limit: int = 100) -> list[WebPost]:
        """The posts workers set aside (and nobody cancelled since), newest first."""
        rows = self.database.fetch_all(
            _SELECT_POSTS + " WHERE state = 'rejected' ORDER BY rejected_at DESC, id LIMIT ?",
            (limit,),
        )
        return [_post_from_row(row) for row in rows]

    def cancel(self, post_id: str) -> bool:
        """Cancel a post no worker has started, or one a worker set aside; whether it is
        cancelled now (by this call or an earlier one). False once a worker claimed it: the
        claim and the cancel are one conditional UPDATE each on ``state = 'queued'``, so only
        one of them wins."""
        with self.database.transaction() as connection:
            connection.execute(
                "UPDATE web_posts SET state = 'cancelled', cancelled_at = ? "
                "WHERE id = ? AND state IN ('queued', 'rejected')",
                (self._clock.time(), post_id),
            )
            row = connection.execute(
                "SELECT state FROM web_posts WHERE id = ?", (post_id,)
            ).fetchone()
        return row is not None and row["state"] == PostState.CANCELLED

    def claim(self, post_id: str, worker: str, *, lease: float) -> bool:
        """Take a post for ``worker`` for ``lease`` seconds: a queued one (it becomes started),
        or a started one nobody holds (its worker let go, or its lease ran out: a worker that
        died mid-upload, whose upload the journal resumes). Whether the claim was won."""
        now = self._clock.time()
        with self.database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE web_posts SET state = 'started', claimed_by = ?, lease_until = ? "
                "WHERE id = ? AND (state = 'queued' OR (state = 'started' AND "
                "(lease_until IS NULL OR lease_until <= ? OR claimed_by = ?)))",
                (worker, now + lease, post_id, now, worker),
            )
            return bool(cursor.rowcount)

    def renew(self, post_ids: Iterable[str], worker: str, *, lease: float) -> int:
        """Extend ``worker``'s claims on ``post_ids``; how many it still held."""
        renewed = 0
        until = self._clock.time() + lease
        with self.database.transaction(durable=False) as connection:
            for post_id in post_ids:
                cursor = connection.execute(
                    "UPDATE web_posts SET lease_until = ? WHERE id = ? AND claimed_by = ? "
                    "AND state = 'started'",
                    (until, post_id, worker),
                )
                renewed += cursor.rowcount
        return renewed

    def release(self, post_id: str, worker: str, *, started: bool) -> None:
        """Let go of ``worker``'s claim after a pass. A post the journal does not have yet
        (``started`` False: nothing was sent, e.g. its creator must sign in again) is queued
        again, so it can still be cancelled; any other stays started, for whichever worker
        takes it next (the journal says what is left to do)."""
        state = PostState.STARTED if started else PostState.QUEUED
        with self.database.transaction() as connection:
            connection.execute(
                "UPDATE web_posts SET state = ?, claimed_by = NULL, lease_until = NULL "
                "WHERE id = ? AND claimed_by = ? AND state = 'started'",
                (str(state), post_id, worker),
            )

    def reject(self, post_id: str, worker: str, problems: Iterable[str]) -> bool:
        """Set aside a post ``worker`` holds and found no longer valid (nothing was sent for
        it), keeping ``problems``: no worker of any instance claims it again. Whether it was
        set aside (False if ``worker`` no longer held it: the next claimant decides)."""
        with self.database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE web_posts SET state = 'rejected', rejected_at = ?, rejection = ?, "
                "claimed_by = NULL, lease_until = NULL "
                "WHERE id = ? AND claimed_by = ? AND state = 'started'",
                (self._clock.time(), json.dumps(list(problems)), post_id, worker),
            )
            return bool(cursor.rowcount)
