"""The review store: posts awaiting review, the creator's one answer, and what voids a consent."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.clock import ManualClock
from orchestrator.store.journal import EntryMeta, EntryState, Journal
from orchestrator.store.review import Consent, ReviewChoices, ReviewItem, ReviewStore

META = EntryMeta("post-1", "post-1", "creator-1", "direct", "file", "a.mp4", "digest", "fp-1")
ITEM = ReviewItem("post-1", "creator-1", "file", ("/videos/a.mp4",), "caption", 3.0, "fp-1")
CHOICES = ReviewChoices("caption", "SELF_ONLY", False, False, False, False, False)


def _reviews(journal: Journal, clock: ManualClock) -> ReviewStore:
    reviews = ReviewStore(journal.database, clock=clock)
    reviews.await_review(META, ITEM)
    return reviews


def _consent(open_id: str = "creator-1", digest: str = "fp-1") -> Consent:
    return Consent(open_id, 1.0, digest, CHOICES, "By posting, …")


def test_a_post_awaits_review_in_the_journal_and_in_its_creators_list(
    journal: Journal, clock: ManualClock
) -> None:
    """The journal says awaiting_review; the creator's list has it until they answer."""
    reviews = _reviews(journal, clock)
    record = journal.get("post-1")
    assert record is not None
    assert record.state is EntryState.AWAITING_REVIEW
    assert reviews.waiting("creator-1") == [ITEM]
    assert reviews.waiting("someone-else") == []
    assert reviews.record_consent("post-1", _consent())
    assert reviews.waiting("creator-1") == []
    assert reviews.consent("post-1") == _consent()


def test_a_post_is_answered_once_and_only_by_its_creator(
    journal: Journal, clock: ManualClock
) -> None:
    """Another creator cannot answer; after a consent, neither a second one nor a decline."""
    reviews = _reviews(journal, clock)
    assert not reviews.record_consent("post-1", _consent("creator-2"))
    assert not reviews.decline("post-1", "creator-2", "no")
    assert reviews.record_consent("post-1", _consent())
    assert not reviews.record_consent("post-1", _consent())
    assert not reviews.decline("post-1", "creator-1", "changed my mind")


def test_a_declined_post_keeps_the_note_and_takes_no_consent(
    journal: Journal, clock: ManualClock
) -> None:
    """Declined is terminal: the note is the journal's message; a late Post records nothing."""
    reviews = _reviews(journal, clock)
    assert reviews.decline("post-1", "creator-1", "wrong song")
    record = journal.get("post-1")
    assert record is not None
    assert record.state is EntryState.DECLINED
    assert "wrong song" in (record.error_message or "")
    assert not reviews.record_consent("post-1", _consent())


def test_a_consent_to_other_media_is_void_once_the_post_awaits_review_again(
    journal: Journal, clock: ManualClock
) -> None:
    """The video changed after the creator confirmed it: the post waits for a new review."""
    reviews = _reviews(journal, clock)
    assert reviews.record_consent("post-1", _consent())
    changed = replace(META, fingerprint="fp-2")
    reviews.await_review(changed, replace(ITEM, fingerprint="fp-2"))
    assert reviews.consent("post-1") is None
    (waiting,) = reviews.waiting("creator-1")
    assert waiting.fingerprint == "fp-2"


def test_a_link_opens_once_and_not_after_it_expires(journal: Journal, clock: ManualClock) -> None:
    """Single use, bounded lifetime; the token is found by its hash only."""
    reviews = _reviews(journal, clock)
    made = reviews.create_link("creator-1", ["post-1"], lifetime=60)
    assert reviews.find_link(made.token) == made.link
    assert reviews.find_link(made.token + "x") is None
    assert reviews.open_link(made.link.id)
    assert not reviews.open_link(made.link.id)
    late = reviews.create_link("creator-1", ["post-1"], lifetime=60)
    clock.advance(61)
    assert not reviews.open_link(late.link.id)
