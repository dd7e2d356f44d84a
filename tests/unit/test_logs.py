"""Logs: JSON lines for machines, and secrets scrubbed even when a caller slips."""

from __future__ import annotations

import io
import json
import logging

from orchestrator.logs import LOGGER_NAME, configure_logging, redact_text


def test_redact_text_hides_query_strings_bearers_and_token_fields() -> None:
    """Upload-URL queries, bearer values and token=... fields never survive redaction."""
    text = (
        "PUT https://upload.example.com/v/?upload_id=1&upload_token=SECRET1 "
        "Authorization: Bearer act.SECRET2 refresh_token=rft.SECRET3 "
        '{"access_token": "act.SECRET4"}'
    )
    redacted = redact_text(text)
    for secret in ("SECRET1", "SECRET2", "SECRET3", "SECRET4"):
        assert secret not in redacted
    assert "https://upload.example.com/v/?<redacted>" in redacted


def test_json_log_lines_carry_fields_and_are_redacted() -> None:
    """--log-format json gives one parseable object per line with extra fields, secrets hidden."""
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    logging.getLogger(f"{LOGGER_NAME}.test").info(
        "sent %s", "https://x.test/u?upload_token=abc123", extra={"fields": {"entry": 3}}
    )
    line = json.loads(stream.getvalue().strip())
    assert line["entry"] == 3
    assert line["level"] == "info"
    assert "abc123" not in line["message"]


def test_quiet_hides_info_and_verbose_shows_debug() -> None:
    """-q drops info lines; -v shows debug lines."""
    stream = io.StringIO()
    configure_logging(verbosity=-1, stream=stream)
    logging.getLogger(LOGGER_NAME).info("not shown")
    configure_logging(verbosity=1, stream=stream)
    logging.getLogger(LOGGER_NAME).debug("shown")
    assert "not shown" not in stream.getvalue()
    assert "shown" in stream.getvalue()
