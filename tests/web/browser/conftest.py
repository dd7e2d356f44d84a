"""A real browser for the web tests: Debian's headless Chromium driven by Playwright.

Nothing here downloads a browser (never ``playwright install``): Playwright launches the
system's ``/usr/bin/chromium`` (``CHROMIUM`` overrides the path). Without Chromium or the
``playwright`` package the tests skip with the reason — except under ``CI=true``, where a
missing browser is a failure (``.ci/run`` installs Debian's ``chromium``).

Every test module here sets ``pytestmark = [slow, browser]``: the slow tier (``--all``). When
a test fails, a PNG of each page it still has open goes to ``$TEST_ARTIFACTS/<test>/``
(default: the test's ``tmp_path``), named in the failure's report.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.web.api_rig import ApiRig

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
_FAILED = pytest.StashKey[bool]()


def chromium_path() -> str | None:
    wanted = os.environ.get("CHROMIUM")
    if wanted:
        return wanted if os.access(wanted, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser journey must run; .ci/run installs it)")
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the session (each test makes its own contexts)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install 'tiktok-orchestrator[browser]')")
    executable = chromium_path()
    if executable is None:
        _missing(
            f"no Chromium at {os.environ.get('CHROMIUM') or '/usr/bin/chromium'} "
            "(apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def review_rig(tmp_path: Path) -> Iterator[ApiRig]:
    """A ``serve`` stack (app, worker, sandbox, API key) whose creators are signed in: two
    public accounts and one who turned comments and duets off (tests/web/test_review.py)."""
    from orchestrator.sandbox import SandboxConfig
    from tests.web.api_rig import open_api_rig
    from tests.web.test_review import USERS

    with open_api_rig(tmp_path, SandboxConfig(users=USERS)) as opened:
        yield opened


@pytest.fixture
def contexts(chromium: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Any]]:
    """The test's browser contexts (``new_context`` appends here); on failure a screenshot of
    every open page is written before they close."""
    made: list[Any] = []
    yield made
    if request.node.stash.get(_FAILED, False):
        folder = Path(os.environ.get("TEST_ARTIFACTS") or tmp_path) / re.sub(
            r"[^\w.-]+", "_", request.node.name
        )
        folder.mkdir(parents=True, exist_ok=True)
        for n, context in enumerate(made):
            for m, page in enumerate(context.pages):
                target = folder / f"context{n}-page{m}.png"
                try:
                    page.screenshot(path=str(target), full_page=True)
                except Exception as exc:  # a screenshot must not hide the failure
                    print(f"screenshot of {page.url} failed: {exc}")
                else:
                    print(f"screenshot of {page.url}: {target}")
    for context in made:
        context.close()


def new_context(chromium: Any, contexts: list[Any], viewport: dict[str, int] = DESKTOP) -> Any:
    """A fresh browser profile (its own cookies), tracked for failure screenshots."""
    context = chromium.new_context(viewport=viewport)
    context.set_default_timeout(15_000)
    contexts.append(context)
    return context
