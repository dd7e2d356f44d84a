"""The state database's schema, as an ordered tuple of migrations (SQLite and PostgreSQL).

The schema version is the number of migrations applied; adding one is appending a
:class:`Migration` to :data:`MIGRATIONS`. Never edit or reorder one that has shipped: a rerun
after upgrading must find its tokens and journal as it left them. ``store.db`` applies these
to SQLite, ``store.postgres`` to PostgreSQL (translating the few SQLite-only words).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.store.review_schema import REVIEW_V1

__all__ = ["MIGRATIONS", "Migration"]


@dataclass(frozen=True)
class Migration:
    """One schema step: a name for messages and the statements that take the schema there."""

    name: str
    statements: tuple[str, ...]


_TOKEN_STORE_V1 = (
    """
    CREATE TABLE store_meta (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    )
    """,
    # Token values are AES-GCM blobs (crypto.py); expiries are Unix seconds; `needs_login` is
    # the reason a user must sign in again (NULL when the refresh token still works);
    # `generation` grows on every write so a refresher can tell another one got there first.
    """
    CREATE TABLE users (
        open_id            TEXT PRIMARY KEY,
        display_name       TEXT,
        scopes             TEXT NOT NULL,
        access_token       BLOB NOT NULL,
        access_expires_at  REAL NOT NULL,
        refresh_token      BLOB NOT NULL,
        refresh_expires_at REAL NOT NULL,
        needs_login        TEXT,
        created_at         REAL NOT NULL,
        updated_at         REAL NOT NULL,
        generation         INTEGER NOT NULL DEFAULT 1
    )
    """,
)

_JOURNAL_V1 = (
    # One row per entry identity. `request_digest` fingerprints what would be sent (caption,
    # post settings, media), so a changed entry can retry a permanent failure.
    # `uploaded_at`: when TikTok got the whole media (counts toward the daily caps).
    """
        CREATE TABLE journal (
            identity          TEXT PRIMARY KEY,
            entry_id          TEXT,
            user_id           TEXT NOT NULL,
            mode              TEXT NOT NULL,
            kind              TEXT NOT NULL,
            source            TEXT NOT NULL,
            request_digest    TEXT NOT NULL,
            state             TEXT NOT NULL,
            publish_id        TEXT,
            upload_url        BLOB,
            url_expires_at    REAL,
            video_size        INTEGER,
            chunk_size        INTEGER,
            total_chunk_count INTEGER,
            bytes_confirmed   INTEGER NOT NULL DEFAULT 0,
            last_status       TEXT,
            post_ids          TEXT NOT NULL DEFAULT '[]',
            error_code        TEXT,
            error_message     TEXT,
            error_log_id      TEXT,
            error_retryable   INTEGER,
            error_hint        TEXT,
            deferred_until    REAL,
            attempts          INTEGER NOT NULL DEFAULT 0,
            created_at        REAL NOT NULL,
            updated_at        REAL NOT NULL,
            uploaded_at       REAL,
            finished_at       REAL
        )
        """,
    "CREATE INDEX journal_user_uploaded ON journal (user_id, mode, uploaded_at)",
    """
        CREATE TABLE journal_events (
            id       INTEGER PRIMARY KEY,
            identity TEXT NOT NULL,
            run_id   TEXT,
            at       REAL NOT NULL,
            event    TEXT NOT NULL,
            detail   TEXT NOT NULL DEFAULT '{}'
        )
        """,
    "CREATE INDEX journal_events_identity ON journal_events (identity, id)",
)

_WORK_QUEUE_V1 = (
    # A shared run's entries (store/queue.py): enqueued once per run id and entry identity,
    # claimed by one worker at a time under a lease that expires if the worker dies. Used by
    # the PostgreSQL store; the same schema everywhere keeps the migrations one list.
    """
    CREATE TABLE work_queue (
        run_id      TEXT NOT NULL,
        identity    TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        position    INTEGER NOT NULL,
        state       TEXT NOT NULL DEFAULT 'pending',
        worker      TEXT,
        lease_until REAL,
        claims      INTEGER NOT NULL DEFAULT 0,
        result      TEXT,
        enqueued_at REAL NOT NULL,
        finished_at REAL,
        PRIMARY KEY (run_id, identity)
    )
    """,
    "CREATE INDEX work_queue_pending ON work_queue (run_id, state, user_id, position)",
    # The requests (reservations) of each user's rate windows, shared by every worker
    # (store/shared_pacing.py); `at` is Unix seconds.
    """
    CREATE TABLE rate_stamps (
        user_id TEXT NOT NULL,
        kind    TEXT NOT NULL,
        at      REAL NOT NULL
    )
    """,
    "CREATE INDEX rate_stamps_window ON rate_stamps (user_id, kind, at)",
)

_JOURNAL_V2 = (
    # The media fingerprint an upload was started with: an entry with an explicit id whose file
    # was replaced must not have the new file's bytes appended to the old file's upload.
    "ALTER TABLE journal ADD COLUMN media_fingerprint TEXT",
    # The daily caps count accepted inits per user over 24 hours from the event log.
    "CREATE INDEX journal_events_event_at ON journal_events (event, at)",
)

_CREATOR_HOLDS_V1 = (
    # Which worker of a shared store works on each creator (store/queue.py): a row per user,
    # taken and renewed by the worker's heartbeat under a lease on the database's clock, with a
    # counter that grows with every take (the fencing token a worker's writes are checked
    # against). Rows, not session advisory locks: they survive poolers in transaction mode,
    # idle-session limits and NAT timeouts, and a paused worker's creators come free.
    """
    CREATE TABLE creator_holds (
        user_id     TEXT PRIMARY KEY,
        worker      TEXT,
        lease_until REAL,
        counter     INTEGER NOT NULL DEFAULT 0
    )
    """,
)

_JOURNAL_V3 = (
    # The caps check asks, for every entry, for one user's inits of the last 24 hours: found
    # from the user's journal rows (this index leads with the user) and, per row, its inits
    # (the second), instead of every user's inits through journal_events_event_at, which made
    # each check cost more the more the run had done (issue 14).
    "CREATE INDEX journal_user_mode_identity ON journal (user_id, mode, identity)",
    "CREATE INDEX journal_events_identity_event_at ON journal_events (identity, event, at)",
)

_WEB_V1 = (
    # The `serve` web application (store/web.py). Every secret handed out (an invite token, an
    # API key, an OAuth state) is >= 128 random bits and kept only as its SHA-256 hex digest:
    # random secrets need no slow hash, and a leaked database hands out nothing usable.
    # Times are Unix seconds; `scopes` is comma-separated like users.scopes.
    """
    CREATE TABLE invites (
        id         TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        label      TEXT NOT NULL,
        scopes     TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at    REAL,
        revoked_at REAL,
        open_id    TEXT
    )
    """,
    """
    CREATE TABLE api_keys (
        id           TEXT PRIMARY KEY,
        key_hash     TEXT NOT NULL UNIQUE,
        label        TEXT NOT NULL,
        created_at   REAL NOT NULL,
        last_used_at REAL,
        revoked_at   REAL
    )
    """,
    # A post made through /api/v1: the manifest entry it stands for (JSON), the digest of the
    # request body (the same Idempotency-Key with another body is refused), and where an
    # uploaded video was spooled. The journal holds its progress under the entry's identity.
    """
    CREATE TABLE web_posts (
        id              TEXT PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        body_digest     TEXT NOT NULL,
        entry           TEXT NOT NULL,
        created_at      REAL NOT NULL,
        cancelled_at    REAL,
        upload_path     TEXT
    )
    """,
    "CREATE INDEX web_posts_created ON web_posts (created_at)",
    # One "Continue with TikTok" click: the OAuth state (hashed), the invite it is bound to,
    # the PKCE verifier sealed with the token cipher, and the hash of the browser cookie.
    """
    CREATE TABLE connect_states (
        state_hash      TEXT PRIMARY KEY,
        invite_id       TEXT NOT NULL,
        sealed_verifier BLOB NOT NULL,
        browser_hash    TEXT NOT NULL,
        created_at      REAL NOT NULL,
        used_at         REAL
    )
    """,
)

_WEB_V2 = (
    # Which `serve` instance works on a post (store/web.py): `state` moves queued -> started
    # (or queued -> cancelled) by conditional UPDATEs, so a DELETE and a worker's claim racing
    # in two instances cannot both win; `claimed_by`/`lease_until` say who runs it now.
    "ALTER TABLE web_posts ADD COLUMN state TEXT NOT NULL DEFAULT 'queued'",
    "ALTER TABLE web_posts ADD COLUMN claimed_by TEXT",
    "ALTER TABLE web_posts ADD COLUMN lease_until REAL",
    "UPDATE web_posts SET state = 'cancelled' WHERE cancelled_at IS NOT NULL",
)

_JOURNAL_V4 = (
    # Planning asks, for every entry with an id the journal does not hold under that id,
    # whether an earlier run's record was adopted by it (`JournalReader.by_entry_id`): without
    # this index each question read every journal row, so planning a manifest cost more the
    # longer the journal's history (issue 14).
    "CREATE INDEX journal_entry_id ON journal (entry_id, updated_at)",
)

_WEB_V3 = (
    # A post the worker set aside (store/web_posts.py): it stopped being valid while it waited
    # (its video removed or changed), so nothing was sent. `state` becomes 'rejected' (no worker
    # of any instance claims it again), `rejection` keeps the problems (a JSON list of strings)
    # that GET /posts/{id} and the posts page show.
    "ALTER TABLE web_posts ADD COLUMN rejected_at REAL",
    "ALTER TABLE web_posts ADD COLUMN rejection TEXT",
)

_WEB_V4 = (
    # What an OAuth attempt is for: 'connect' (an invite: `invite_id`) or 'review' (a creator
    # signing in to review; `review_link_id` is the link it started from, if any, and
    # `invite_id` is empty).
    "ALTER TABLE connect_states ADD COLUMN purpose TEXT NOT NULL DEFAULT 'connect'",
    "ALTER TABLE connect_states ADD COLUMN review_link_id TEXT",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration("token store", _TOKEN_STORE_V1),
    Migration("journal", _JOURNAL_V1),
    Migration("journal fingerprints and cap index", _JOURNAL_V2),
    Migration("work queue and shared rate windows", _WORK_QUEUE_V1),
    Migration("creator holds for shared runs", _CREATOR_HOLDS_V1),
    Migration("journal per-user init index", _JOURNAL_V3),
    Migration("web: invites, API keys, posts, connect states", _WEB_V1),
    Migration("web: post claims for several serve instances", _WEB_V2),
    Migration("creator review: items and links", REVIEW_V1),
    Migration("journal index by entry id", _JOURNAL_V4),
    Migration("web: posts set aside by the worker", _WEB_V3),
    Migration("web: review sign-ins", _WEB_V4),
    # Append new migrations here; never edit or reorder one that has shipped.
)
