"""`run --notify` when the run leaves posts awaiting review: the notice lists each creator with
posts waiting; a fresh review link per creator only with --notify-review-links (links are
single-use bearer tokens) and ORCHESTRATOR_PUBLIC_URL; otherwise where to make links."""

from __future__ import annotations

import re

from click.testing import Result

from orchestrator.clock import SystemClock
from orchestrator.store.review import ReviewStore
from orchestrator.store.tokens import TokenStore
from tests.cli.test_run_cli import invoke
from tests.support.receiver import Receiver, receiving
from tests.support.run_support import Served

PUBLIC = "https://review.example.test"
REVIEW = {"review": "creator"}


def review_run(served: Served, receiver: Receiver, *args: str, **env: str) -> Result:
    """Three posts for review (two for sandbox-user-1, one for sandbox-user-2), one plain."""
    clips = [served.clip(f"{name}.mp4")[0] for name in "abcd"]
    manifest = served.manifest(
        [
            {"id": "r1", "user_id": "sandbox-user-1", "video_path": clips[0].name, **REVIEW},
            {"id": "r2", "user_id": "sandbox-user-1", "video_path": clips[1].name, **REVIEW},
            {"id": "r3", "user_id": "sandbox-user-2", "video_path": clips[2].name, **REVIEW},
            {"id": "plain", "user_id": "sandbox-user-1", "video_path": clips[3].name},
        ]
    )
    return invoke(
        served,
        "run",
        str(manifest),
        "--report",
        "r.json",
        "--notify",
        receiver.url("json", "/hook"),
        *args,
        env=env,
    )


def text_of(receiver: Receiver) -> str:
    (message,) = receiver.received
    return f"{message['title']}\n{message['message']}"


def test_opted_in_the_notice_carries_a_working_link_per_creator(served: Served) -> None:
    """A clean run (default --notify-on failure) still notifies: each creator with their count
    and a fresh link to the public URL that opens exactly their posts; no link in the output."""
    with receiving("ok") as receiver:
        result = review_run(
            served,
            receiver,
            "--notify-review-links",
            ORCHESTRATOR_PUBLIC_URL=PUBLIC,
        )
    assert result.exit_code == 0, result.output
    text = text_of(receiver)
    assert "3 posts await review" in text
    links = dict(re.findall(rf"- (sandbox-user-\d): \d posts?: ({PUBLIC}/review/\S+)", text))
    assert set(links) == {"sandbox-user-1", "sandbox-user-2"}
    assert "sandbox-user-1: 2 posts" in text
    clock = SystemClock()
    with TokenStore.open(served.settings, clock=clock) as store:
        reviews = ReviewStore(store.database, clock=clock)
        link = reviews.find_link(links["sandbox-user-1"].rsplit("/", 1)[1])
        assert link is not None
        assert link.open_id == "sandbox-user-1"
        assert set(link.identities) == {"r1", "r2"}
    for url in links.values():
        assert url not in result.output
        assert url not in (served.folder / "r.json").read_text()


def test_without_opting_in_no_link_is_made_or_sent(served: Served) -> None:
    """Links are secrets: by default the notice says where to make them, and sends none."""
    with receiving("ok") as receiver:
        result = review_run(served, receiver, ORCHESTRATOR_PUBLIC_URL=PUBLIC)
    assert result.exit_code == 0, result.output
    text = text_of(receiver)
    assert "3 posts await review; make links on the Reviews page" in text
    assert "- sandbox-user-2: 1 post" in text
    assert "/review/" not in text
    with TokenStore.open(served.settings, clock=SystemClock()) as store:
        assert store.database.fetch_all("SELECT id FROM review_links", ()) == []


def test_opted_in_without_a_public_url_says_to_set_it(served: Served) -> None:
    """No ORCHESTRATOR_PUBLIC_URL: no link could point anywhere, and the notice says so."""
    with receiving("ok") as receiver:
        result = review_run(
            served, receiver, ORCHESTRATOR_NOTIFY_REVIEW_LINKS="1", ORCHESTRATOR_PUBLIC_URL=""
        )
    assert result.exit_code == 0, result.output
    text = text_of(receiver)
    assert "no link sent: ORCHESTRATOR_PUBLIC_URL is not set" in text
    assert "/review/" not in text
