"""orchestrator.notify: targets shown without credentials, and when a run notifies."""

from __future__ import annotations

import pytest

from orchestrator.notify import NotifyOn, Outcome, redact_target, should_notify


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "json://user:hunter2@hooks.example.com:8443/path/tok-123?token=abc",
            "json://hooks.example.com:8443",
        ),
        ("forms://hooks.example.com/secret-path", "forms://hooks.example.com"),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general", "slack://"),
        ("tgram://123456789:AAH-bot-token/987654321", "tgram://"),
        (
            "mailtos://ops:app-password@smtp.example.com?to=ops@example.com",
            "mailtos://smtp.example.com",
        ),
    ],
)
def test_a_target_is_shown_without_userinfo_path_or_query(url: str, shown: str) -> None:
    """Only scheme and host of a webhook or mail server, only the scheme of token-hosted URLs."""
    assert redact_target(url) == shown


@pytest.mark.parametrize(
    ("when", "outcome", "previous", "sends"),
    [
        (NotifyOn.FAILURE, Outcome.OK, None, False),
        (NotifyOn.FAILURE, Outcome.UNAVAILABLE, None, True),
        (NotifyOn.FAILURE, Outcome.FAILED, Outcome.FAILED, True),
        (NotifyOn.FAILURE, Outcome.NEEDS_LOGIN, None, True),
        (NotifyOn.ALWAYS, Outcome.OK, Outcome.OK, True),
        (NotifyOn.CHANGE, Outcome.OK, Outcome.OK, False),
        (NotifyOn.CHANGE, Outcome.OK, None, True),
        (NotifyOn.CHANGE, Outcome.OK, Outcome.FAILED, True),
    ],
)
def test_when_a_run_notifies(
    when: NotifyOn, outcome: Outcome, previous: Outcome | None, sends: bool
) -> None:
    """failure: failed/uncertain or a login needed; always; change: differs from last time."""
    assert should_notify(outcome, when, previous) is sends
