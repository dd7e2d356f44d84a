"""A wrapper that keeps secret values out of logs, reprs and exception messages.

Tokens, the client secret and upload-URL tokens travel as :class:`Secret`; only the code that
puts them on the wire or encrypts them calls :meth:`Secret.reveal`.
"""

from __future__ import annotations

import hmac


class Secret:
    """A string that never shows itself: ``str``, ``repr`` and f-strings give ``<hidden>``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the wire or the cipher only."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    def __str__(self) -> str:
        return "<hidden>"

    def __format__(self, format_spec: str) -> str:
        return "<hidden>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Secret is not pickled")
