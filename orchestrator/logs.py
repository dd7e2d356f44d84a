"""Log output for people (text) and machines (JSON lines), with a last line of defence for secrets.

Secrets are kept out of log records by construction (``Secret``, ``redact_url``); the
:class:`RedactingFilter` additionally hides URL query strings and bearer values in every
record, so a slip elsewhere does not become a leaked upload token in a cron mail.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Final, TextIO

LOGGER_NAME: Final = "orchestrator"

_URL_QUERY = re.compile(r"(https?://[^\s?#\"']+)\?[^\s\"']*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_TOKEN_FIELD = re.compile(
    r"(?i)((?:access_token|refresh_token|client_secret|code_verifier|upload_token|token)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"
)


def redact_text(text: str) -> str:
    """Hide URL query strings, bearer values and token-looking fields in free text."""
    text = _URL_QUERY.sub(r"\1?<redacted>", text)
    text = _BEARER.sub(r"\1<hidden>", text)
    return _TOKEN_FIELD.sub(r"\1<hidden>", text)


class RedactingFilter(logging.Filter):
    """Rewrite each record's message with :func:`redact_text` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            document.update({k: v for k, v in fields.items() if k not in document})
        return json.dumps(document, ensure_ascii=False, default=str)


def configure_logging(
    *, verbosity: int = 0, fmt: str = "text", stream: TextIO | None = None
) -> None:
    """Route the ``orchestrator`` logger to ``stream`` (stderr) at a level set by -v/-q."""
    level = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO}.get(
        max(min(verbosity, 1), -2), logging.DEBUG
    )
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        )
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
