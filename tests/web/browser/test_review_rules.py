"""Each rule of tiktok-api.md §11 on the creator's review page, one at a time, in a real browser
(headless Chromium, phone-sized) against the sandbox: what the page allows, and — for a control
forced on through devtools — that the server refuses it, records nothing and sends nothing."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.clock import ManualClock, SystemClock
from orchestrator.sandbox import Fault
from orchestrator.store.review import ReviewStore
from orchestrator.store.tokens import TokenStore
from tests.web.api_rig import ApiRig
from tests.web.browser.review_pages import (
    BRANDED_DECLARATION,
    LOCKED,
    PLAIN_DECLARATION,
    PUBLIC,
    force_enable,
    open_review,
    operator_page,
    phone,
    press,
    review_link,
    untouched,
)
from tests.web.test_review import queue_for_review

pytestmark = [pytest.mark.slow, pytest.mark.browser]

GREY = "rgb(156, 163, 175)"
"""The colour of a greyed-out control's label (style.css)."""
DAYS = 24 * 3600.0


def test_privacy_has_no_default_value(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """The dropdown opens on "Choose…" with none of the creator's options selected, and Post
    is disabled until one is chosen — and again when the creator goes back to "Choose…"."""
    post_id = queue_for_review(review_rig, PUBLIC, "a.mp4")
    page, errors = open_review(review_rig, chromium, contexts, PUBLIC)
    privacy = page.locator("#privacy_level")
    post = page.locator("#post-button")
    assert privacy.input_value() == ""
    assert page.locator("#privacy_level option:checked").text_content() == "Choose…"
    offered = page.eval_on_selector_all(
        "#privacy_level option", "options => options.map(o => [o.value, o.defaultSelected])"
    )
    assert [value for value, _ in offered] == [
        "",
        "PUBLIC_TO_EVERYONE",
        "MUTUAL_FOLLOW_FRIENDS",
        "SELF_ONLY",
    ]
    assert [value for value, chosen in offered if chosen] == [""]
    assert post.is_disabled()
    privacy.select_option("MUTUAL_FOLLOW_FRIENDS")
    assert post.is_enabled()
    privacy.select_option("")
    assert post.is_disabled()
    assert errors == []
    untouched(review_rig, post_id)


def test_post_stays_disabled_until_the_last_required_choice(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """Walking the choices one by one (caption, boxes, disclosure, a brand, privacy last),
    Post is disabled after each until the last required one; undoing a brand disables it."""
    post_id = queue_for_review(review_rig, PUBLIC, "a.mp4")
    page, errors = open_review(review_rig, chromium, contexts, PUBLIC)
    post = page.locator("#post-button")
    steps = (
        lambda: page.fill("#caption", "my caption"),
        lambda: page.check("#allow_comment"),
        lambda: page.check("#allow_duet"),
        lambda: page.check("#disclose"),
        lambda: page.check("#brand_organic_toggle"),
    )
    assert post.is_disabled()
    for step in steps:
        step()
        assert post.is_disabled()
    page.select_option("#privacy_level", "PUBLIC_TO_EVERYONE")
    assert post.is_enabled()
    page.uncheck("#brand_organic_toggle")  # disclosure on with no brand: not complete
    assert post.is_disabled()
    page.check("#brand_content_toggle")
    assert post.is_enabled()
    page.uncheck("#disclose")  # disclosure off: nothing left to pick
    assert post.is_enabled()
    assert errors == []
    untouched(review_rig, post_id)


@pytest.mark.parametrize(
    ("box", "problem"),
    [
        ("#allow_comment", "comments are turned off for your account"),
        ("#allow_duet", "duets are turned off for your account"),
    ],
)
def test_an_interaction_the_creator_turned_off_is_greyed_and_refused_when_forced(
    review_rig: ApiRig, chromium: Any, contexts: list[Any], box: str, problem: str
) -> None:
    """The box is disabled and its label grey; enabled through devtools, ticked and posted,
    the server refuses it: the page says why, nothing is journalled, no init at the sandbox."""
    post_id = queue_for_review(review_rig, LOCKED, "a.mp4")
    page, _ = open_review(review_rig, chromium, contexts, LOCKED)
    label = page.locator(f"label:has({box})")
    assert page.locator(box).is_disabled()
    assert label.evaluate("el => getComputedStyle(el).color") == GREY
    assert page.locator("#allow_stitch").is_enabled()  # this creator left stitches on
    stitch_label = page.locator("label:has(#allow_stitch)")
    assert stitch_label.evaluate("el => getComputedStyle(el).color") != GREY

    force_enable(page, box)
    page.check(box)
    page.select_option("#privacy_level", "SELF_ONLY")
    pressed = press(page, "#post-button")
    assert pressed.form[box.removeprefix("#")] == ["on"]  # the crafted choice was sent
    assert pressed.status == 422
    assert problem in page.locator("#problems").text_content()
    assert page.locator(box).is_disabled()  # shown again greyed, not ticked
    assert not page.locator(box).is_checked()
    untouched(review_rig, post_id)


def test_the_disclosure_toggle_is_off_and_offers_both_brands_with_their_labels(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """ "Disclose video content" starts off with its choices hidden; on, it shows "Your brand"
    (Promotional content) and "Branded content" (Paid partnership)."""
    post_id = queue_for_review(review_rig, PUBLIC, "a.mp4")
    page, errors = open_review(review_rig, chromium, contexts, PUBLIC)
    disclose = page.locator("#disclose")
    assert not disclose.is_checked()
    assert page.locator("label:has(#disclose)").text_content().strip() == "Disclose video content"
    assert not page.locator("#brand_organic_toggle").is_visible()
    assert not page.locator("#brand_content_toggle").is_visible()
    disclose.check()
    disclosure = page.locator("#disclosure")
    assert disclosure.is_visible()
    organic = page.locator("label:has(#brand_organic_toggle)")
    branded = page.locator("label:has(#brand_content_toggle)")
    assert organic.text_content().strip() == "Your brand"
    assert branded.text_content().strip() == "Branded content"
    assert not page.locator("#brand_organic_toggle").is_checked()
    assert not page.locator("#brand_content_toggle").is_checked()
    text = disclosure.inner_text()
    assert text.index("Your brand") < text.index('"Promotional content"')
    assert text.index("Branded content") < text.index('"Paid partnership"')
    disclose.uncheck()  # off again: the choices go away, unticked
    assert not page.locator("#brand_organic_toggle").is_visible()
    assert errors == []
    untouched(review_rig, post_id)


def test_branded_content_cannot_be_private_in_the_browser_or_by_a_forced_post(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """Branded content disables "Only me" (and clears it when chosen); forcing it back in
    devtools and posting is refused by the server, with nothing recorded or sent."""
    post_id = queue_for_review(review_rig, PUBLIC, "a.mp4")
    page, _ = open_review(review_rig, chromium, contexts, PUBLIC)
    privacy = page.locator("#privacy_level")
    only_me = page.locator('#privacy_level option[value="SELF_ONLY"]')
    privacy.select_option("SELF_ONLY")
    page.check("#disclose")
    page.check("#brand_content_toggle")
    assert only_me.is_disabled()
    assert privacy.input_value() == ""  # the private choice is cleared
    assert page.locator("#post-button").is_disabled()
    page.uncheck("#brand_content_toggle")
    assert only_me.is_enabled()
    page.check("#brand_content_toggle")

    force_enable(page, '#privacy_level option[value="SELF_ONLY"]')
    privacy.evaluate("el => { el.value = 'SELF_ONLY'; }")  # no change event: the page not told
    force_enable(page, "#post-button")
    pressed = press(page, "#post-button")
    assert pressed.form["privacy_level"] == ["SELF_ONLY"]
    assert pressed.form["brand_content_toggle"] == ["on"]
    assert pressed.status == 422
    assert "branded content cannot be private" in page.locator("#problems").text_content()
    assert only_me.is_disabled()
    assert privacy.input_value() == ""
    untouched(review_rig, post_id)


def test_the_declaration_switches_with_the_branded_choice(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """Above the Post button: §11.4's plain declaration, the Branded Content Policy one while
    branded content is picked (whatever else is), and the plain one again when it is not."""
    queue_for_review(review_rig, PUBLIC, "a.mp4")
    page, errors = open_review(review_rig, chromium, contexts, PUBLIC)
    declaration = page.locator("#declaration")
    before_button = page.eval_on_selector(
        "#declaration",
        "el => !!(el.compareDocumentPosition(document.getElementById('post-button'))"
        " & Node.DOCUMENT_POSITION_FOLLOWING)",
    )
    assert before_button
    assert declaration.text_content() == PLAIN_DECLARATION
    assert declaration.is_visible()
    page.check("#disclose")
    assert declaration.text_content() == PLAIN_DECLARATION
    page.check("#brand_organic_toggle")
    assert declaration.text_content() == PLAIN_DECLARATION
    page.check("#brand_content_toggle")
    assert declaration.text_content() == BRANDED_DECLARATION
    page.uncheck("#brand_organic_toggle")
    assert declaration.text_content() == BRANDED_DECLARATION
    page.uncheck("#brand_content_toggle")
    assert declaration.text_content() == PLAIN_DECLARATION
    page.check("#brand_content_toggle")
    page.uncheck("#disclose")  # turning disclosure off drops the branded choice
    assert declaration.text_content() == PLAIN_DECLARATION
    assert errors == []


def test_a_photo_post_offers_comments_only_and_shows_the_photos_as_a_strip(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """A photo post: the photos side by side in one row, Allow Comment the only interaction;
    a duet forced into the form is refused by the server."""
    urls = [f"https://media.example.com/spring/{n}.jpg" for n in (1, 2, 3)]
    answer = review_rig.post(
        "/api/v1/posts",
        json={"user_id": PUBLIC, "photo_urls": urls, "title": "spring", "review": "creator"},
    )
    assert answer.status_code == 202, answer.text
    post_id = answer.json()["id"]
    waiting = review_rig.wait_for(post_id, lambda post: post["state"] != "queued")
    assert waiting["state"] == "awaiting_review", waiting
    page, _ = open_review(review_rig, chromium, contexts, PUBLIC)

    photos = page.locator(".strip img")
    assert photos.count() == 3
    assert [photos.nth(n).get_attribute("src") for n in range(3)] == urls
    page.wait_for_function(
        "[...document.querySelectorAll('.strip img')].every(img => img.complete)"
    )
    boxes = [photos.nth(n).bounding_box() for n in range(3)]
    assert all(box is not None for box in boxes)
    assert len({round(box["y"]) for box in boxes if box}) == 1, boxes  # one row
    lefts = [box["x"] for box in boxes if box]
    assert lefts == sorted(lefts)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not page.locator("video").count()
    assert page.locator("#allow_comment").is_enabled()
    assert page.locator("#allow_duet").count() == 0
    assert page.locator("#allow_stitch").count() == 0

    page.eval_on_selector(
        "#review-form",
        "form => { const box = document.createElement('input'); box.type = 'hidden';"
        " box.name = 'allow_duet'; box.value = 'on'; form.appendChild(box); }",
    )
    page.select_option("#privacy_level", "SELF_ONLY")
    pressed = press(page, "#post-button")
    assert pressed.form["allow_duet"] == ["on"]
    assert pressed.status == 422
    assert "a photo post takes no duet or stitch" in page.locator("#problems").text_content()
    untouched(review_rig, post_id)


def test_a_video_over_the_creators_max_duration_cannot_be_posted(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """The creator's limit fell below the clip's 4 s after the post was prepared: the page
    says why, has no Post button and no form to send — only "Not this one"."""
    post_id = queue_for_review(review_rig, PUBLIC, "a.mp4")
    (creator,) = [user for user in review_rig.sandbox.users if user.open_id == PUBLIC]
    review_rig.sandbox.change_user(dataclasses.replace(creator, max_video_post_duration_sec=3))
    page, errors = open_review(review_rig, chromium, contexts, PUBLIC)
    too_long = page.locator("#too-long")
    assert too_long.is_visible()
    assert too_long.text_content() == (
        "this video lasts 4 s; your account may post at most 3 s. "
        "This post cannot be published from your account."
    )
    assert page.locator("#review-form").count() == 0
    assert page.locator("#post-button").count() == 0
    assert page.locator("button:has-text('Not this one')").is_visible()
    assert errors == []
    untouched(review_rig, post_id)


def test_a_creator_who_cannot_post_now_sees_the_cant_post_state(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """creator_info says the creator cannot post now (TikTok's daily cap, at HTTP 200): the
    page tells them to try later and offers no Post; when TikTok allows it again, it does."""
    post_id = queue_for_review(review_rig, PUBLIC, "a.mp4")
    review_rig.sandbox.schedule(
        Fault("creator_info", call=None, status=200, error_code="spam_risk_too_many_posts")
    )
    page, _ = open_review(review_rig, chromium, contexts, PUBLIC)
    cannot = page.locator("#cannot-post")
    assert cannot.is_visible()
    assert "cannot post right now" in cannot.text_content()
    assert "Try again later" in cannot.text_content()
    assert page.locator("#review-form").count() == 0
    assert page.locator("#post-button").count() == 0
    untouched(review_rig, post_id)

    review_rig.sandbox.clear_faults()
    page.reload()
    assert page.locator("#cannot-post").count() == 0
    assert page.locator("#post-button").is_disabled()  # back, waiting for the choices


def test_a_reused_link_shows_the_already_used_page(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """A link opens once: a second browser gets "already used" and the way out (ask for a new
    link), with no review on it; the first browser keeps its review."""
    queue_for_review(review_rig, PUBLIC, "a.mp4")
    url = review_link(review_rig, PUBLIC)
    first = phone(chromium, contexts).new_page()
    first.goto(url)
    assert first.locator("#review-form").is_visible()
    second = phone(chromium, contexts).new_page()
    answer = second.goto(url)
    assert answer is not None
    assert answer.status == 410
    assert second.locator("h1").text_content() == "This review link was already used"
    assert "ask the person who sent you the link for a new review link." in second.content()
    assert second.locator("button:has-text('Sign in with TikTok')").is_visible()
    assert second.locator("#review-form").count() == 0
    first.reload()
    assert first.locator("#review-form").is_visible()


def test_an_expired_link_shows_the_expired_page(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """A link made 30 days ago (valid for a few) shows "expired" and how to get a new one,
    and opens no review."""
    post_id = queue_for_review(review_rig, PUBLIC, "a.mp4")
    with TokenStore.open(review_rig.settings, clock=SystemClock()) as store:
        then = ManualClock(SystemClock().time() - 30 * DAYS)
        made = ReviewStore(store.database, clock=then).create_link(PUBLIC, [post_id])
    page = phone(chromium, contexts).new_page()
    answer = page.goto(f"{review_rig.url}/review/{made.token}")
    assert answer is not None
    assert answer.status == 410
    assert page.locator("h1").text_content() == "This review link has expired"
    assert "ask the person who sent you the link for a new review link." in page.content()
    assert page.locator("button:has-text('Sign in with TikTok')").is_visible()
    assert page.locator("#review-form").count() == 0
    page.goto(f"{review_rig.url}/review")
    assert page.locator("#review-form").count() == 0
    untouched(review_rig, post_id)


def test_not_this_one_declines_and_the_post_shows_declined(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """ "Not this one" with a note: the post is declined, never posted; the creator's page and
    the operator's posts page and `history --json` say declined."""
    post_id = queue_for_review(review_rig, PUBLIC, "a.mp4")
    page, errors = open_review(review_rig, chromium, contexts, PUBLIC)
    page.fill("#note", "wrong song")
    pressed = press(page, "button:has-text('Not this one')")
    assert pressed.status == 302
    assert pressed.form["note"] == ["wrong song"]
    page.wait_for_url("**/review")
    assert page.locator("h1").text_content() == "Nothing left to review"
    assert page.locator("td.state").all_text_contents() == ["declined"]
    assert errors == []

    post = review_rig.get(f"/api/v1/posts/{post_id}").json()
    assert post["state"] == "declined"
    assert "wrong song" in post["error"]["message"]
    assert post["consent"] is None
    operator = operator_page(chromium, contexts, review_rig, "/posts")
    (row,) = operator.locator("tbody tr").all()
    assert row.locator("td.state").text_content() == "declined"
    assert "wrong song" in row.inner_text()
    history = CliRunner().invoke(
        cli, ["history", "--json"], env={"ORCHESTRATOR_HOME": str(review_rig.settings.home)}
    )
    assert history.exit_code == 0, history.output
    (entry,) = json.loads(history.stdout)
    assert entry["state"] == "declined", entry
    assert entry["consent"] is None, entry
    assert review_rig.sandbox.calls("video_init") == 0
    assert review_rig.sandbox.publishes() == []
