"""The audit kit for TikTok's Direct Post audit: the creator-review flow, shot step by step.

Run from the repository's root (needs the ``browser`` extra, Debian's ``chromium`` and
``ffmpeg``; nothing downloads a browser)::

    python docs/audit/make_audit_kit.py [--out docs/audit/out]

It starts the app, its API worker and the simulator (a Web app) on loopback and drives headless
Chromium through the real flow: a creator connects → the operator sends a direct post with
``review: creator`` and makes a review link on the "Reviews" page → the creator's review page
(phone-sized) with each control of TikTok's "Required UX implementation" (tiktok-api.md §11) →
Post → processing → published. It writes a PNG of every step, ``flow.webm`` (the screenshots
assembled with ffmpeg) and ``AUDIT.md``, which maps each §11 requirement to the screenshots
that show it. The accounts, links and keys in the pictures are the simulator's, made for this
run; the creator's avatar (a URL off this machine) is served by a placeholder picture.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from orchestrator.review import DECLARATION, DECLARATION_BRANDED  # noqa: E402
from orchestrator.sandbox import Fault, SandboxUser  # noqa: E402
from tests.web.browser.conftest import CHROMIUM_ARGS, DESKTOP, PHONE, chromium_path  # noqa: E402
from tests.web.browser.rig import ADMIN_PASSWORD, WebRig, web_rig  # noqa: E402

WAIT_LIMIT = 60.0
CREATOR = SandboxUser(open_id="sandbox-user-1", display_name="Sandbox One", stitch_disabled=True)
CAPTION = "Our spring collection, part 1 #spring"
CLIP_SECONDS = 4
FRAME = (1280, 800)
SECONDS_PER_STEP = 2
AVATAR_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96">'
    '<circle cx="48" cy="48" r="48" fill="#25f4ee"/>'
    '<text x="48" y="60" font-size="40" text-anchor="middle" font-family="sans-serif"'
    ' fill="#111">S1</text></svg>'
)


@dataclass(frozen=True)
class Step:
    name: str
    shows: str


# Every screenshot, in the order of the flow (the video's order too).
STEPS = (
    Step("01-connect", "The creator's invite page: connect the TikTok account"),
    Step("02-authorize", "TikTok's authorize page (the simulator's) with the scopes asked"),
    Step("03-connected", "The account is connected"),
    Step("04-operator-reviews", "The operator's Reviews page: a post awaits review; its link"),
    Step(
        "05-review-page",
        "The creator's review page as it opens: nickname and avatar, preview, caption, privacy "
        "with no value, Comment/Duet unchecked, Stitch greyed (disabled by the creator), "
        "disclosure off, the declaration, Post disabled",
    ),
    Step("06-privacy-options", "The privacy dropdown's options (drawn open for the picture)"),
    Step("07-cannot-post", "creator_info says the creator cannot post now: the page stops"),
    Step(
        "07b-too-long",
        f"The creator's max_video_post_duration_sec is below the clip's {CLIP_SECONDS} s: the "
        "page says so and offers no Post button (only 'Not this one')",
    ),
    Step("08-caption-privacy", "Caption edited and a privacy chosen: Post becomes possible"),
    Step(
        "09-disclose-on",
        "Disclose video content on: Your brand / Branded content with their labels; Post "
        "disabled until one is picked",
    ),
    Step("10-your-brand", "Your brand picked: the plain declaration, Post possible"),
    Step(
        "11-branded",
        "Branded content picked: 'Only me' is not selectable (shown open), the choice of a "
        "private audience is cleared and the declaration names the Branded Content Policy",
    ),
    Step("12-complete", "Every required choice made (everyone, comments allowed): Post enabled"),
    Step("13-processing", "After Post: processing may take a few minutes, with the status"),
    Step("14-published", "Published: the state and the TikTok post id"),
)


@dataclass(frozen=True)
class Requirement:
    section: str
    text: str
    shots: tuple[str, ...]


REQUIREMENTS = (
    Requirement("1", "Creator nickname (and avatar), fresh on the page", ("05-review-page",)),
    Requirement("1", "creator_info says they cannot post now: stop, say so", ("07-cannot-post",)),
    Requirement(
        "1",
        "A video over max_video_post_duration_sec cannot be posted: the page says so and has "
        "no form, the server refuses it too",
        ("07b-too-long",),
    ),
    Requirement("2", "Title/caption editable", ("05-review-page", "08-caption-privacy")),
    Requirement(
        "2",
        "Privacy from privacy_level_options, dropdown, no default value",
        ("05-review-page", "06-privacy-options"),
    ),
    Requirement("2", "Allow Comment / Duet / Stitch unchecked by default", ("05-review-page",)),
    Requirement(
        "2", "Interactions the creator disabled are greyed out (here: Stitch)", ("05-review-page",)
    ),
    Requirement("3", "'Disclose video content' toggle, off by default", ("05-review-page",)),
    Requirement(
        "3",
        "When on: 'Your brand' (Promotional content) / 'Branded content' (Paid partnership); "
        "one must be picked before posting",
        ("09-disclose-on", "10-your-brand", "11-branded"),
    ),
    Requirement("3", "Branded content cannot be private (no SELF_ONLY)", ("11-branded",)),
    Requirement(
        "4",
        f"Declaration before the button: “{DECLARATION}”",
        ("05-review-page", "10-your-brand"),
    ),
    Requirement("4", f"With branded content: “{DECLARATION_BRANDED}”", ("11-branded",)),
    Requirement("5", "Preview of the content before posting", ("05-review-page",)),
    Requirement(
        "5",
        "Explicit confirmation: Post disabled until every required choice is made; nothing sent "
        "before the press (tests/web/test_review.py proves the sandbox saw no init)",
        ("05-review-page", "09-disclose-on", "12-complete"),
    ),
    Requirement(
        "5",
        "After Post: told processing may take a few minutes; the status is visible",
        ("13-processing", "14-published"),
    ),
    Requirement(
        "5",
        "No watermark, logo or promotional text added (the server sends the file byte-exact)",
        ("05-review-page", "14-published"),
    ),
)


def shoot(page: Any, out: Path, name: str, *, full_page: bool = False) -> None:
    assert name in {step.name for step in STEPS}, name
    target = out / f"{name}.png"
    page.screenshot(path=str(target), full_page=full_page)
    print(target)


def wait_state(web: WebRig, key: str, post_id: str, wanted: set[str]) -> str:
    import requests

    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        body = requests.get(
            f"{web.base}/api/v1/posts/{post_id}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).json()
        state: str = body["state"]
        if state in wanted or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def make_video(folder: Path) -> Path:
    """A real 4-second clip (so the preview shows a picture), made by ffmpeg."""
    path = folder / "spring-1.mp4"
    ffmpeg(
        *("-f", "lavfi", "-i", f"testsrc2=size=360x640:rate=25:duration={CLIP_SECONDS}"),
        *("-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)),
    )
    return path


def show_options(page: Any, *, open_: bool) -> None:
    """Draw the privacy dropdown open (a native popup is not in a screenshot) or closed."""
    page.eval_on_selector(
        "#privacy_level",
        "(el, open) => { el.size = open ? el.options.length : 0; }",
        open_,
    )


def connect(browser: Any, web: WebRig, operator: Any, out: Path) -> None:
    operator.goto(f"{web.base}/invites")
    operator.fill("#label", "Client X (Sandbox One)")
    operator.click("button:has-text('Make invite')")
    invite_url = operator.input_value("input[aria-label='invite link']")
    creator = browser.new_context(viewport=PHONE).new_page()
    creator.goto(invite_url)
    shoot(creator, out, "01-connect")
    creator.click("button:has-text('Continue with TikTok')")
    creator.wait_for_url("**/v2/auth/authorize/**")
    creator.select_option("select[name=open_id]", CREATOR.open_id)
    shoot(creator, out, "02-authorize")
    creator.click("button:has-text('Approve')")
    creator.wait_for_url("**/connect/callback/**")
    shoot(creator, out, "03-connected")
    creator.context.close()


def flow(browser: Any, web: WebRig, out: Path) -> None:
    import requests

    operator = browser.new_context(viewport=DESKTOP).new_page()
    operator.goto(f"{web.base}/login")
    operator.fill("#password", ADMIN_PASSWORD)
    operator.click("button:has-text('Sign in')")
    operator.wait_for_url(f"{web.base}/accounts")
    connect(browser, web, operator, out)

    operator.goto(f"{web.base}/api-keys")
    operator.fill("#label", "planner")
    operator.click("button:has-text('Make key')")
    key = operator.input_value("input[aria-label='API key']")
    entry = {
        "user_id": CREATOR.open_id,
        "video_path": str(make_video(web.media)),
        "description": "Spring collection 1",
        "privacy_level": "SELF_ONLY",
        "review": "creator",
    }
    posted = requests.post(
        f"{web.base}/api/v1/posts",
        headers={"Authorization": f"Bearer {key}"},
        json=entry,
        timeout=60,
    )
    posted.raise_for_status()
    post_id = posted.json()["id"]
    state = wait_state(web, key, post_id, {"awaiting_review", "failed", "uncertain"})
    if state != "awaiting_review":
        raise SystemExit(f"the post is {state}, not awaiting_review: see the server's log")
    operator.goto(f"{web.base}/review-links")
    operator.click("button:has-text('Make review link')")
    review_url = operator.input_value("#new-review-url")
    shoot(operator, out, "04-operator-reviews")

    context = browser.new_context(viewport=PHONE)
    context.route(
        "https://media.example.com/**",
        lambda route: route.fulfill(status=200, content_type="image/svg+xml", body=AVATAR_SVG),
    )
    page = context.new_page()
    page.goto(f"{web.base}{urlsplit(review_url).path}")
    page.wait_for_selector("#post-button")
    page.wait_for_function("document.querySelector('video').readyState >= 2", timeout=10_000)
    page.eval_on_selector("video", "v => { v.currentTime = 1.5; }")
    shoot(page, out, "05-review-page", full_page=True)
    show_options(page, open_=True)
    page.locator("#privacy_level").scroll_into_view_if_needed()
    shoot(page, out, "06-privacy-options")
    show_options(page, open_=False)

    web.sandbox.schedule(
        Fault("creator_info", call=None, status=403, error_code="spam_risk_too_many_posts")
    )
    page.reload()
    page.wait_for_selector("#cannot-post")
    shoot(page, out, "07-cannot-post")
    web.sandbox.clear_faults()
    shorter = dataclasses.replace(CREATOR, max_video_post_duration_sec=CLIP_SECONDS - 1)
    web.sandbox.change_user(shorter)
    page.reload()
    page.wait_for_selector("#too-long")
    shoot(page, out, "07b-too-long", full_page=True)
    web.sandbox.change_user(CREATOR)
    page.reload()
    page.wait_for_selector("#post-button")

    page.fill("#caption", CAPTION)
    page.select_option("#privacy_level", "SELF_ONLY")
    assert page.locator("#post-button").is_enabled()
    page.locator("#privacy_level").scroll_into_view_if_needed()
    shoot(page, out, "08-caption-privacy")
    page.check("#disclose")
    assert page.locator("#post-button").is_disabled()
    page.locator("#disclosure").scroll_into_view_if_needed()
    shoot(page, out, "09-disclose-on")
    page.check("#brand_organic_toggle")
    assert page.locator("#post-button").is_enabled()
    page.locator("#post-button").scroll_into_view_if_needed()
    shoot(page, out, "10-your-brand")
    page.uncheck("#brand_organic_toggle")
    page.check("#brand_content_toggle")
    assert page.locator('#privacy_level option[value="SELF_ONLY"]').is_disabled()
    assert page.locator("#declaration").text_content() == DECLARATION_BRANDED
    show_options(page, open_=True)
    shoot(page, out, "11-branded", full_page=True)
    show_options(page, open_=False)
    page.select_option("#privacy_level", "PUBLIC_TO_EVERYONE")
    page.check("#allow_comment")
    assert page.locator("#post-button").is_enabled()
    page.locator("#post-button").scroll_into_view_if_needed()
    shoot(page, out, "12-complete")

    page.click("#post-button")
    page.wait_for_url("**/review")
    shoot(page, out, "13-processing")
    state = wait_state(web, key, post_id, {"published", "failed", "uncertain"})
    if state != "published":
        raise SystemExit(f"the post ended {state}, not published: see the server's log")
    page.reload()
    shoot(page, out, "14-published")


def assemble_video(out: Path) -> Path:
    """``flow.webm``: each screenshot for SECONDS_PER_STEP s, letterboxed to one frame size."""
    width, height = FRAME
    target = out / "flow.webm"
    with tempfile.TemporaryDirectory(prefix="audit-frames-") as scratch:
        frames = Path(scratch)
        for n, step in enumerate(STEPS):
            ffmpeg(
                "-i",
                str(out / f"{step.name}.png"),
                "-vf",
                f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=white",
                str(frames / f"{n:03d}.png"),
            )
        ffmpeg(
            *("-framerate", f"1/{SECONDS_PER_STEP}", "-i", str(frames / "%03d.png")),
            *("-r", "10", "-pix_fmt", "yuv420p", "-c:v", "libvpx", "-b:v", "400k"),
            *("-deadline", "realtime", str(target)),
        )
    print(target)
    return target


def write_markdown(out: Path) -> Path:
    shows = {step.name: step.shows for step in STEPS}
    lines = [
        "# Audit kit: the Direct Post experience (TikTok's §11 requirements)",
        "",
        "Generated by `python docs/audit/make_audit_kit.py` against the simulator on loopback:",
        "a real headless Chromium drives the real web side (`serve`). The creator reviews on a",
        "phone-sized page; `flow.webm` shows the whole flow from these screenshots. The",
        "repository keeps this page and a few of the pictures (docs/audit/out); run the command",
        "for all of them and the video.",
        "",
        "## §11 requirement → screenshot",
        "",
        "| § | requirement | screenshot(s) |",
        "|---|---|---|",
    ]
    for req in REQUIREMENTS:
        shots = ", ".join(f"[{name}]({name}.png)" for name in req.shots)
        lines.append(f"| 11.{req.section} | {req.text} | {shots} |")
    lines += ["", "## The steps", ""]
    for step in STEPS:
        lines.append(f"- [{step.name}]({step.name}.png): {shows[step.name]}")
    lines += [
        "",
        "What the page enforces is enforced again by the server on Post (a crafted form post",
        "cannot choose a greyed interaction, a private branded post or no privacy); the tests",
        "in `tests/web/test_review.py` and `tests/web/browser/test_review_rules.py` prove it,",
        "one rule at a time in a real browser, and `tests/web/browser/test_review_journeys.py`",
        "runs 10 posts for 3 creators end to end.",
        "",
    ]
    target = out / "AUDIT.md"
    target.write_text("\n".join(lines), encoding="utf-8")
    print(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "audit" / "out")
    args = parser.parse_args(argv)
    executable = chromium_path()
    if executable is None:
        print("no Chromium: apt-get install chromium (or set CHROMIUM)", file=sys.stderr)
        return 1
    if shutil.which("ffmpeg") is None:
        print("no ffmpeg: apt-get install ffmpeg", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="audit-kit-") as scratch,
        web_rig(Path(scratch), users=(CREATOR,)) as web,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            flow(browser, web, out)
        finally:
            browser.close()
    assemble_video(out)
    write_markdown(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
