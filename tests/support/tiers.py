"""Test tiers: a fast default run, and everything with ``--all``.

``python -m pytest`` runs the fast tier: unit, CLI, sandbox, functional and security tests, the
campaign's targeted scenarios, and the fuzz properties with a few examples each. ``--all`` (or
``TIERS=full``; ``.ci/run`` passes ``--all``) adds the slow tier:

- ``campaign``: the seeded fault campaign and its regression seeds (real processes, SIGKILLs);
- ``postgres``: everything under ``tests/postgres`` (a throw-away PostgreSQL server, workers);
- ``slow``: anything else that takes seconds: multi-hundred-MB transfers, kill loops, the
  10,000-entry manifests, the README's demo run as a subprocess;

and runs each fuzz property with its full example count (``fuzz_examples``).

A slow-tier test still runs without ``--all`` when asked for by name: its file or node id on
the command line, its tier's folder (``tests/campaign``, ``tests/postgres``), a ``-m``
expression, or ``--campaign-seeds`` / ``CAMPAIGN_SEEDS`` for the campaign.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SLOW_TIER = ("campaign", "postgres", "slow")
"""Markers of the tests the default run leaves out."""

_FOLDER_MARKERS = {"postgres": "postgres"}
"""Folders under tests/ whose every test carries a slow-tier marker."""

_TIER_FOLDERS = frozenset({"campaign", "postgres"})
"""Folders whose slow-tier tests run when the folder is named on the command line."""

_TESTS = Path(__file__).resolve().parents[1]


def full_tier() -> bool:
    """Whether this session runs everything (``--all`` or ``TIERS=full``)."""
    return os.environ.get("TIERS", "").strip().lower() == "full"


def fuzz_examples(full: int) -> int:
    """Examples per fuzz property: ``FUZZ_EXAMPLES`` if set, else ``full`` with ``--all`` and
    a tenth of it (at least 3) in the fast tier."""
    override = os.environ.get("FUZZ_EXAMPLES")
    if override:
        return int(override)
    return full if full_tier() else max(3, full // 10)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all",
        action="store_true",
        dest="all_tiers",
        help="run the slow tier too (fault campaign, PostgreSQL, large transfers, fuzzing with "
        "every example); same as TIERS=full",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("all_tiers"):
        # Read by fuzz_examples() when the fuzz modules are imported (after this hook), and
        # inherited by the child processes a test starts.
        os.environ["TIERS"] = "full"


def pytest_report_header(config: pytest.Config) -> str:
    if full_tier():
        return "tiers: all (fast and slow)"
    return "tiers: fast (slow-tier tests deselected unless named; --all runs everything)"


def _named(item: pytest.Item, config: pytest.Config) -> bool:
    """Whether the command line names ``item``: its file, a node id in it, or a folder at or
    below its tier's folder."""
    item_path = item.path.resolve()
    for arg in config.args:
        target = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
        if target == item_path:
            return True
        if target.is_dir() and item_path.is_relative_to(target):
            relative = target.relative_to(_TESTS).parts if target.is_relative_to(_TESTS) else ()
            if relative and relative[0] in _TIER_FOLDERS:
                return True
    return False


def _campaign_asked(config: pytest.Config) -> bool:
    return (
        config.getoption("campaign_seeds", default=None) is not None
        or "CAMPAIGN_SEEDS" in os.environ
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.resolve()
        parts = path.relative_to(_TESTS).parts if path.is_relative_to(_TESTS) else ()
        if parts and parts[0] in _FOLDER_MARKERS:
            item.add_marker(_FOLDER_MARKERS[parts[0]])
    if full_tier() or config.option.markexpr:
        return
    keep: list[pytest.Item] = []
    slow: list[pytest.Item] = []
    for item in items:
        tiers = {marker for marker in SLOW_TIER if item.get_closest_marker(marker)}
        if not tiers or _named(item, config) or (tiers == {"campaign"} and _campaign_asked(config)):
            keep.append(item)
        else:
            slow.append(item)
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = keep
