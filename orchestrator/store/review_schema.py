"""The creator-review tables (``store/review.py``), as one migration of ``store/db.py``.

A leaf: statements only, so the migration list can name them without importing the store.
"""

from __future__ import annotations

REVIEW_V1 = (
    # A post waiting for its creator: what the review page shows of it, kept when the run
    # journalled it `awaiting_review` (so a post made by `run` is reviewable like one made over
    # /api/v1). `snapshot` is JSON: the media (a path or URLs), caption, duration, fingerprint.
    """
    CREATE TABLE review_items (
        identity   TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL,
        snapshot   TEXT NOT NULL,
        created_at REAL NOT NULL
    )
    """,
    "CREATE INDEX review_items_user ON review_items (user_id)",
    # A review link: >= 128 random bits kept only as its SHA-256 (like an invite), bound to one
    # creator (open_id) and the posts it was made for (`identities`, JSON), used once.
    """
    CREATE TABLE review_links (
        id         TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        open_id    TEXT NOT NULL,
        identities TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at    REAL
    )
    """,
)
