"""Secrets never show themselves."""

from __future__ import annotations

import pickle

import pytest

from orchestrator.secret import Secret


def test_secret_hides_its_value_everywhere() -> None:
    """str, repr, format and containers show <hidden>, never the value."""
    secret = Secret("act.very-secret-value")
    shown = [
        str(secret),
        repr(secret),
        f"{secret}",
        f"{secret!r}",
        repr([secret]),
        repr({"t": secret}),
    ]
    assert all("very-secret-value" not in text for text in shown)
    assert secret.reveal() == "act.very-secret-value"


def test_secret_refuses_pickling() -> None:
    """A Secret cannot be pickled into a file by accident."""
    with pytest.raises(TypeError):
        pickle.dumps(Secret("x"))


def test_secret_equality_compares_values() -> None:
    """Two Secrets with the same value are equal; different values are not."""
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
