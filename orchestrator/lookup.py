"""The ``history``, ``report`` and ``status`` use cases: what the journal knows, and what
TikTok says now.

Plain functions the CLI calls and renders. None takes the run lock or writes the journal, so
they work while a run is going (SQLite's WAL lets readers in beside the writer). ``status`` may
refresh the user's access token like any API call does (that is token upkeep, serialised with
the run's refreshes by the token store). Nothing here prints, and no record returned carries an
upload URL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.clock import Clock
from orchestrator.config import Settings
from orchestrator.errors import ConfigError
from orchestrator.secret import Secret
from orchestrator.store.backend import is_shared
from orchestrator.store.db import DB_FILENAME
from orchestrator.store.journal import Journal, JournalRecord
from orchestrator.store.queue import QueueItem, read_items
from orchestrator.store.review import Consent, ReviewStore
from orchestrator.store.tokens import TokenProvider, TokenRefresher, TokenStore
from orchestrator.tiktok.client import PublishStatus, TikTokClient
from orchestrator.tiktok.codes import FailReasonInfo, classify_fail_reason
from orchestrator.tiktok.oauth import OAuthClient, TokenGrant
from orchestrator.transport import HttpTransport, Transport


def read_history(
    settings: Settings,
    *,
    clock: Clock,
    user_id: str | None = None,
    since: float | None = None,
) -> list[JournalRecord]:
    """Journal entries, most recently changed first, for one user and/or since an epoch time.

    A home without a state database has no history (nothing is created to say so).
    """
    if not is_shared(settings) and not (settings.home / DB_FILENAME).exists():
        return []
    with TokenStore.open(settings, clock=clock, create=False) as store:
        journal = Journal(store.database, store.cipher, clock=clock, run_id="history")
        return journal.history(user_id=user_id, since=since)


def read_consents(
    settings: Settings, identities: Sequence[str], *, clock: Clock
) -> dict[str, Consent]:
    """The creator's review consent of each of ``identities`` that has one (``review.py``)."""
    if not identities or (not is_shared(settings) and not (settings.home / DB_FILENAME).exists()):
        return {}
    with TokenStore.open(settings, clock=clock, create=False) as store:
        reviews = ReviewStore(store.database, clock=clock)
        found = {identity: reviews.consent(identity) for identity in identities}
    return {identity: consent for identity, consent in found.items() if consent is not None}


@dataclass(frozen=True)
class RunEntry:
    """One entry of a run: the shared queue's view (None for a run of one machine) and the
    journal's (None for an entry no worker has started)."""

    identity: str
    queued: QueueItem | None
    record: JournalRecord | None


def read_run(settings: Settings, run_id: str, *, clock: Clock) -> list[RunEntry]:
    """The entries of run ``run_id`` — a shared run's whole queue, whichever worker did each,
    or the entries a run of one machine touched — in order; empty if the store has no such run.
    """
    if not is_shared(settings) and not (settings.home / DB_FILENAME).exists():
        return []
    with TokenStore.open(settings, clock=clock, create=False) as store:
        journal = Journal(store.database, store.cipher, clock=clock, run_id="report")
        queued = read_items(store.database, run_id)
        seen = {item.identity for item in queued}
        touched = [
            str(row["identity"])
            for row in store.database.fetch_all(
                "SELECT identity, min(id) AS first FROM journal_events WHERE run_id = ?"
                " GROUP BY identity ORDER BY first",
                (run_id,),
            )
            if row["identity"] not in seen
        ]
        entries = [RunEntry(item.identity, item, journal.get(item.identity)) for item in queued]
        entries += [RunEntry(identity, None, journal.get(identity)) for identity in touched]
        return entries


@dataclass(frozen=True)
class PostStatus:
    """TikTok's answer for one publish_id, what its ``fail_reason`` means, and the journal's
    entry for it when this home posted it."""

    publish_id: str
    open_id: str
    status: PublishStatus
    fail_reason: FailReasonInfo | None
    entry: JournalRecord | None


def fetch_post_status(
    settings: Settings,
    publish_id: str,
    open_id: str,
    *,
    clock: Clock,
    transport_factory: Callable[[], Transport] = HttpTransport,
) -> PostStatus:
    """Ask TikTok where ``publish_id`` (posted for ``open_id``) is now.

    Raises ApiError (e.g. ``invalid_publish_id``), NeedsLoginError, TransportError.
    """
    with (
        TokenStore.open(settings, clock=clock, create=False) as store,
        contextlib.closing(transport_factory()) as transport,
    ):
        refresher: TokenRefresher = (
            OAuthClient.from_settings(settings, transport, clock)
            if settings.client_key and settings.client_secret
            else _NoAppCredentials()
        )
        tokens = TokenProvider(store, refresher, clock=clock)
        client = TikTokClient(settings.api_base, transport, tokens, clock=clock)
        status = client.fetch_status(open_id, publish_id)
        entry = Journal(store.database, store.cipher, clock=clock, run_id="status").by_publish_id(
            publish_id
        )
    meaning = classify_fail_reason(status.fail_reason) if status.fail_reason else None
    return PostStatus(publish_id, open_id, status, meaning, entry)


class _NoAppCredentials:
    """A refresher for a home without app credentials: fine while the token is fresh."""

    def refresh(self, refresh_token: Secret) -> TokenGrant:
        raise ConfigError(
            "the access token needs a refresh, which needs TIKTOK_CLIENT_KEY and "
            "TIKTOK_CLIENT_SECRET",
            hint="export the app's credentials and run again",
        )
