"""Screenshots of the web side for the README: the browser journey, one PNG per page.

Run from the repository's root (needs the ``browser`` extra and Debian's ``chromium``; nothing
downloads a browser)::

    python docs/screenshots.py [--out docs/screenshots]

It starts the app, its API worker and the simulator (a Web app) on loopback, drives headless
Chromium through the same journey as ``tests/web/browser/test_journey.py`` and writes
``login``, ``accounts``, ``invites``, ``connect``, ``authorize``, ``connected``, ``api-keys``
and ``posts`` at 1280x800, and ``connect-phone`` / ``connected-phone`` at 390x844. Only the
ones the README shows are committed (see ``docs/screenshots/.gitignore``); the keys, invite
links and tokens in them are the simulator's, made for this run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.functional.run_support import make_clip  # noqa: E402
from tests.web.browser.conftest import CHROMIUM_ARGS, DESKTOP, PHONE, chromium_path  # noqa: E402
from tests.web.browser.rig import ADMIN_PASSWORD, WebRig, web_rig  # noqa: E402

WAIT_LIMIT = 60.0


def shoot(page: Any, out: Path, name: str) -> None:
    target = out / f"{name}.png"
    page.screenshot(path=str(target))
    print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


def wait_published(web: WebRig, key: str, post_id: str) -> None:
    import requests

    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        body = requests.get(
            f"{web.base}/api/v1/posts/{post_id}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).json()
        if body["state"] in ("published", "sent_to_inbox", "failed", "uncertain"):
            return
        time.sleep(0.1)


def journey(browser: Any, web: WebRig, out: Path) -> None:
    import requests

    operator = browser.new_context(viewport=DESKTOP).new_page()
    operator.goto(f"{web.base}/login")
    shoot(operator, out, "login")
    operator.fill("#password", ADMIN_PASSWORD)
    operator.click("button:has-text('Sign in')")
    operator.wait_for_url(f"{web.base}/accounts")

    invite_urls = []
    for label in ("Client X (Sandbox One)", "Studio Y (Sandbox Two)"):
        operator.goto(f"{web.base}/invites")
        operator.fill("#label", label)
        operator.click("button:has-text('Make invite')")
        invite_urls.append(operator.input_value("input[aria-label='invite link']"))
    shoot(operator, out, "invites")

    for n, (invite_url, viewport) in enumerate(zip(invite_urls, (DESKTOP, PHONE), strict=True)):
        suffix = "" if viewport is DESKTOP else "-phone"
        creator = browser.new_context(viewport=viewport).new_page()
        creator.goto(invite_url)
        shoot(creator, out, f"connect{suffix}")
        creator.click("button:has-text('Continue with TikTok')")
        creator.wait_for_url("**/v2/auth/authorize/**")
        creator.select_option("select[name=open_id]", index=n)
        shoot(creator, out, f"authorize{suffix}")
        creator.click("button:has-text('Approve')")
        creator.wait_for_url("**/connect/callback/**")
        shoot(creator, out, f"connected{suffix}")
        creator.context.close()

    operator.goto(f"{web.base}/accounts")
    shoot(operator, out, "accounts")
    operator.goto(f"{web.base}/api-keys")
    operator.fill("#label", "n8n")
    operator.click("button:has-text('Make key')")
    key = operator.input_value("input[aria-label='API key']")
    shoot(operator, out, "api-keys")

    path, _digest = make_clip(web.media, "clip.mp4", 1_000_000)
    entry = {"user_id": "sandbox-user-1", "privacy_level": "SELF_ONLY", "description": "hello"}
    with path.open("rb") as video:
        posted = requests.post(
            f"{web.base}/api/v1/posts",
            headers={"Authorization": f"Bearer {key}"},
            data={"entry": json.dumps(entry)},
            files={"video": ("clip.mp4", video, "video/mp4")},
            timeout=60,
        )
    posted.raise_for_status()
    wait_published(web, key, posted.json()["id"])
    operator.goto(f"{web.base}/posts")
    shoot(operator, out, "posts")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    executable = chromium_path()
    if executable is None:
        print("no Chromium: apt-get install chromium (or set CHROMIUM)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="screenshots-") as scratch,
        web_rig(Path(scratch)) as web,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            journey(browser, web, args.out)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
