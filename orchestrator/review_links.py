"""Review links for a run's notice: which creators the run left posts awaiting review for, how
many each, and — only when the operator opted in (``--notify-review-links``) and the server's
public URL is known — a fresh single-use review link for each.

A review link is a bearer token (whoever holds it reviews and posts as the creator), so it is
made only to be sent, carried as a :class:`~orchestrator.secret.Secret`, and never logged or
written to a report; the store keeps only its hash.

It must not send anything (notify.py delivers) nor judge a post (review.py does).
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.clock import Clock
from orchestrator.config import Settings
from orchestrator.notify import AwaitingReview
from orchestrator.outcomes import EntryStatus
from orchestrator.report import RunReport
from orchestrator.secret import Secret

REVIEW_PATH = "/review/"
"""Where ``serve`` opens a review link (``web/review.py``)."""


def left_for_review(report: RunReport) -> bool:
    """Whether the run left posts awaiting their creator's review."""
    return any(entry.status is EntryStatus.AWAITING_REVIEW for entry in report.entries)


def awaiting_review(
    settings: Settings, report: RunReport, *, clock: Clock, links: bool
) -> Sequence[AwaitingReview]:
    """Each creator of the report's posts awaiting review with their unanswered posts (all of
    them, this run's or earlier ones'), and a fresh link for them when ``links`` and the
    public URL is set."""
    from orchestrator.store.review import ReviewStore
    from orchestrator.store.tokens import TokenStore

    creators = dict.fromkeys(
        entry.user_id for entry in report.entries if entry.status is EntryStatus.AWAITING_REVIEW
    )
    found = []
    with TokenStore.open(settings, clock=clock, create=False) as store:
        reviews = ReviewStore(store.database, clock=clock)
        for open_id in creators:
            items = reviews.waiting(open_id)
            if not items:
                continue  # answered meanwhile (confirmed posts wait for the next run)
            link = None
            if links and settings.public_url:
                made = reviews.create_link(open_id, [item.identity for item in items])
                link = Secret(f"{settings.public_url}{REVIEW_PATH}{made.token}")
                expires_at: float | None = made.link.expires_at
            else:
                expires_at = None
            found.append(AwaitingReview(open_id, len(items), link, expires_at))
    return found
