"""A scripted "browser" for login tests: ``scripted_browser.py URL``.

It GETs the sandbox's authorize page, fills the consent form (the first user, or
``SCRIPTED_BROWSER_USER``; every scope ticked), presses Authorize (or Deny when
``SCRIPTED_BROWSER_ACTION=deny``), and follows the redirect to the orchestrator's loopback
callback, as a person's browser would. ``SCRIPTED_BROWSER_ACTION=ignore`` does nothing (a
browser the user closed). Exit code 0 when the callback answered, whatever its status.

Also importable: :func:`authorize` returns the redirect address instead of following it (for
``--no-browser`` tests, where the user pastes it).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin


class _ConsentForm(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: list[tuple[str, str]] = []
        self.users: list[str] = []
        self._in_select = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        elif tag == "select":
            self._in_select = True
        elif tag == "option" and self._in_select:
            self.users.append(values.get("value", ""))
        elif tag == "input":
            kind = values.get("type", "text")
            if kind == "hidden" or (kind == "checkbox" and "checked" in values):
                self.fields.append((values["name"], values.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._in_select = False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _opener(follow: bool) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if not follow:
        handlers.append(_NoRedirect())
    return urllib.request.build_opener(*handlers)


def authorize(url: str, *, action: str = "authorize", user: str | None = None) -> str:
    """Fill and submit the consent form; return the redirect address (not followed)."""
    with _opener(follow=True).open(url, timeout=10) as page:
        form = _ConsentForm()
        form.feed(page.read().decode())
    fields = [*form.fields, ("open_id", user or form.users[0]), ("action", action)]
    request = urllib.request.Request(  # noqa: S310 - loopback http URLs from the test
        urljoin(url, form.action),
        data=urlencode(fields).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with _opener(follow=False).open(request, timeout=10) as answer:
            raise RuntimeError(f"expected a redirect, got HTTP {answer.status}")
    except urllib.error.HTTPError as redirect:
        location = redirect.headers["Location"]
        redirect.close()
        if redirect.code not in (301, 302, 303, 307) or not location:
            raise
        return str(location)


def main(argv: list[str]) -> int:
    action = os.environ.get("SCRIPTED_BROWSER_ACTION", "authorize")
    if action == "ignore":
        return 0
    location = authorize(argv[1], action=action, user=os.environ.get("SCRIPTED_BROWSER_USER"))
    try:
        with _opener(follow=True).open(location, timeout=10) as answer:
            answer.read()
    except urllib.error.HTTPError as refused:  # the callback's 400 page is still an answer
        refused.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
