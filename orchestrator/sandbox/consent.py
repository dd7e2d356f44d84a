"""A robot that answers the sandbox's consent page as a person's browser would.

``run --sandbox`` signs the sandbox users in through the orchestrator's real OAuth code (PKCE,
the loopback callback, the code exchange); this plays the person's part: it opens the
authorize page, picks the user, presses Authorize (or Deny) and follows the redirect to the
callback. The tests' scripted ``BROWSER`` uses it too. Loopback sandbox pages only.
"""

from __future__ import annotations

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


def follow(location: str) -> None:
    """Open the redirect address (the orchestrator's callback) and read its answer."""
    try:
        with _opener(follow=True).open(location, timeout=10) as answer:
            answer.read()
    except urllib.error.HTTPError as refused:  # the callback's 400 page is still an answer
        refused.close()


def consent(url: str, *, action: str = "authorize", user: str | None = None) -> None:
    """Answer the consent page at ``url`` and deliver the redirect to the callback."""
    follow(authorize(url, action=action, user=user))
