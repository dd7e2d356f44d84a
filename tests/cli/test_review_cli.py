"""`review: creator` and `run --review creator` through the CLI: the post waits for its creator,
a rerun does not post it, and once the creator confirmed it the next run posts their settings."""

from __future__ import annotations

import json

from click.testing import Result

from orchestrator.clock import SystemClock
from orchestrator.store.review import Consent, ReviewChoices, ReviewStore
from orchestrator.store.tokens import TokenStore
from tests.support.run_support import Served

USER = "sandbox-user-1"


def _statuses(served: Served, result: Result) -> dict[str, str]:
    assert result.exit_code == 0, result.output
    report = json.loads((served.folder / "r.json").read_text())
    return {entry["id"]: entry["status"] for entry in report["entries"]}


def _confirm(served: Served, identity: str, choices: ReviewChoices) -> None:
    """What pressing Post on the review page records (the page itself: tests/web)."""
    clock = SystemClock()
    with TokenStore.open(served.settings, clock=clock) as store:
        reviews = ReviewStore(store.database, clock=clock)
        item = reviews.item(identity)
        assert item is not None
        consent = Consent(USER, clock.time(), item.fingerprint, choices, "By posting, …")
        assert reviews.record_consent(identity, consent)


def test_a_post_for_review_waits_then_goes_out_with_the_creators_settings(
    served: Served,
) -> None:
    """Exit 0 while the post awaits review, no init for it on a rerun; after the consent the
    next run posts it once with the page's caption and privacy, and history shows the consent."""
    a, _ = served.clip("a.mp4")
    b, _ = served.clip("b.mp4")
    manifest = served.manifest(
        [
            {"id": "teaser", "user_id": USER, "video_path": a.name, "review": "creator"},
            {"id": "plain", "user_id": USER, "video_path": b.name},
        ]
    )
    first = served.invoke("run", str(manifest), "--report", "r.json")
    assert _statuses(served, first) == {"teaser": "awaiting_review", "plain": "published"}
    again = served.invoke("run", str(manifest), "--report", "r.json")
    assert _statuses(served, again) == {"teaser": "awaiting_review", "plain": "already_done"}
    assert len(served.sandbox.publishes()) == 1

    choices = ReviewChoices(
        caption="from the page",
        privacy_level="PUBLIC_TO_EVERYONE",
        allow_comment=True,
        allow_duet=False,
        allow_stitch=False,
        brand_organic_toggle=True,
        brand_content_toggle=False,
    )
    _confirm(served, "teaser", choices)
    last = served.invoke("run", str(manifest), "--report", "r.json")
    assert _statuses(served, last) == {"teaser": "published", "plain": "already_done"}
    (posted,) = [p for p in served.sandbox.publishes() if p.post_info.get("title")]
    assert posted.post_info["title"] == "from the page"
    assert posted.post_info["privacy_level"] == "PUBLIC_TO_EVERYONE"
    assert posted.post_info["disable_comment"] is False
    assert posted.post_info["brand_organic_toggle"] is True

    history = served.invoke("history", "--json")
    assert history.exit_code == 0, history.output
    (teaser,) = [row for row in json.loads(history.stdout) if row["id"] == "teaser"]
    assert teaser["state"] == "published"
    assert teaser["consent"]["open_id"] == USER
    assert teaser["consent"]["settings"]["caption"] == "from the page"
    assert teaser["consent"]["media_digest"]


def test_run_review_creator_holds_every_direct_post_but_not_inbox_drafts(
    served: Served,
) -> None:
    """`--review creator`: direct posts wait for their creator; an inbox draft goes out."""
    a, _ = served.clip("a.mp4")
    b, _ = served.clip("b.mp4")
    manifest = served.manifest(
        [
            {"id": "direct", "user_id": USER, "video_path": a.name},
            {"id": "draft", "user_id": USER, "video_path": b.name, "mode": "inbox"},
        ]
    )
    result = served.invoke("run", str(manifest), "--review", "creator", "--report", "r.json")
    assert _statuses(served, result) == {"direct": "awaiting_review", "draft": "sent_to_inbox"}
    assert [p.mode for p in served.sandbox.publishes()] == ["inbox"]
