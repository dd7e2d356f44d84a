"""The test tiers: the default run leaves the slow tier out; `--all` or naming a test brings it
in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.tiers import full_tier, fuzz_examples

_SAMPLE = """
import pytest

def test_fast():
    pass

@pytest.mark.slow
def test_slow():
    pass

@pytest.mark.campaign
def test_seed():
    pass

@pytest.mark.postgres
def test_database():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A throw-away suite with one test per tier, and the tier plugin."""
    monkeypatch.delenv("TIERS", raising=False)  # restored after: --all sets it
    monkeypatch.delenv("CAMPAIGN_SEEDS", raising=False)
    pytester.makeini(
        "[pytest]\nmarkers =\n    slow: s\n    campaign: c\n    postgres: p\n"
        "addopts = -p tests.support.tiers -p no:cacheprovider --strict-markers\n"
    )
    pytester.makeconftest(
        "def pytest_addoption(parser):\n"
        "    parser.addoption('--campaign-seeds', type=int, default=None)\n"
    )
    pytester.makepyfile(test_sample=_SAMPLE)
    return pytester


def _outcome(result: pytest.RunResult) -> tuple[list[str], int]:
    passed = sorted(
        match.group(1)
        for line in result.outlines
        if (match := re.match(r"test_sample\.py::(\w+) PASSED", line))
    )
    deselected = result.parseoutcomes().get("deselected", 0)
    return passed, deselected


def test_default_run_deselects_the_slow_tier_and_says_so(suite: pytest.Pytester) -> None:
    """Plain `pytest`: only the fast test runs; the three slow-tier ones are counted as
    deselected and the header names --all."""
    result = suite.runpytest("-v")
    assert _outcome(result) == (["test_fast"], 3)
    result.stdout.fnmatch_lines(["tiers: fast*--all runs everything*"])


def test_all_runs_every_tier(suite: pytest.Pytester) -> None:
    """`--all` (what .ci/run passes) runs every test."""
    result = suite.runpytest("-v", "--all")
    assert _outcome(result) == (["test_database", "test_fast", "test_seed", "test_slow"], 0)


def test_tiers_full_is_the_full_tier_and_fuzzes_with_every_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TIERS=full is --all: fuzz properties get their full count (a tenth, at least 3, in the
    fast tier); FUZZ_EXAMPLES overrides both."""
    monkeypatch.delenv("FUZZ_EXAMPLES", raising=False)
    monkeypatch.delenv("TIERS", raising=False)
    assert (full_tier(), fuzz_examples(200), fuzz_examples(20)) == (False, 20, 3)
    monkeypatch.setenv("TIERS", "full")
    assert (full_tier(), fuzz_examples(200), fuzz_examples(20)) == (True, 200, 20)
    monkeypatch.setenv("FUZZ_EXAMPLES", "5000")
    assert fuzz_examples(200) == 5000


def test_a_named_test_or_a_marker_expression_runs_whatever_its_tier(
    suite: pytest.Pytester,
) -> None:
    """A node id on the command line, or -m, selects a slow-tier test without --all."""
    assert _outcome(suite.runpytest("-v", "test_sample.py::test_slow")) == (["test_slow"], 0)
    assert _outcome(suite.runpytest("-v", "-m", "postgres")) == (["test_database"], 3)


def test_campaign_seeds_bring_the_campaign_in(suite: pytest.Pytester) -> None:
    """--campaign-seeds asks for the campaign: its tests run, the rest of the slow tier not."""
    result = suite.runpytest("-v", "--campaign-seeds=3")
    assert _outcome(result) == (["test_fast", "test_seed"], 2)


def test_ci_runs_every_tier() -> None:
    """.ci/run passes --all to pytest (in one process: -n 0)."""
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    runs = [line for line in ci.splitlines() if line.startswith("python -m pytest")]
    assert runs == ["python -m pytest -q --all -n 0"]
