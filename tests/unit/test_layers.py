"""Data flows one way: no module under orchestrator/ imports one from a higher layer.

The layers, lowest first. A module may import its own layer and any layer below; an import
(at module level, inside a function, or under ``TYPE_CHECKING`` — a type is a dependency too)
of a higher layer is an arrow pointing the wrong way and fails the test. A name is placed by its
longest matching prefix, so ``scheduler`` covers a ``scheduler/`` package's modules too; a new
module no prefix covers fails the test until it is placed here on purpose.

1. foundations — leaves every layer shares: the error tree, secrets, the clock, settings from
   the environment, atomic files, log setup, the shared value types (``outcomes``), the upload
   engine's vocabulary (``upload.events``: what the store persists) and TikTok's pure tables
   (``tiktok.codes``, ``tiktok.chunks``, ``tiktok.credentials``) and the OAuth values the
   token store keeps (``tiktok.oauth_values``).
2. pure domain — no I/O beyond reading the files named: the retry policy and pacing windows,
   media sniffing, the manifest model and readers, the report renderers (their values are what
   the scheduler produces, so they sit below it).
3. store — SQLite/PostgreSQL: migrations, damaged-store checks, tokens, journal rows (reads)
   and writes, queue, locks, shared pacing.
4. transport — the only module that imports requests.
5. tiktok — the API and OAuth clients (and the OAuth side's authorize URL, loopback callback
   and answer parsing).
6. run settings — every tunable of the engine and the run (``settings.RunSettings``); it
   names the transport's timeouts and the queue's lease, and the engine reads it.
7. upload — the engine: request, sans-I/O machine, the driver's steps (run state, init,
   transfer, settle) and the driver; and progress subscribers.
8. rerun and pre-flight — the rerun policy over journal records, creator checks.
9. scheduler — planning, gates, fan-out.
10. use cases — ``runner``, ``lookup``, ``auth``, the public ``api``, the sandbox simulator
   (the CLI's ``--sandbox`` wires it).
11. front ends — ``cli`` (and ``__main__``), then the web app.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.imports import loaded_by_import

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "orchestrator"

LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "orchestrator",  # the package root (its __init__) only
        "errors",
        "secret",
        "clock",
        "config",
        "files",
        "logs",
        "outcomes",
        "humantime",
        "upload.events",
        "tiktok",  # the subpackage's __init__
        "tiktok.codes",
        "tiktok.chunks",
        "tiktok.credentials",
        "tiktok.oauth_values",
    ),
    ("retry", "media", "manifest", "report"),
    ("store",),
    ("transport",),
    (
        "tiktok.client",
        "tiktok.oauth",
        "tiktok.web_oauth",
        "tiktok.oauth_answers",
        "tiktok.authorize",
        "tiktok.callback",
    ),
    ("settings",),
    ("upload", "progress"),
    ("rerun", "preflight", "review"),
    ("scheduler",),
    ("runner", "lookup", "auth", "api", "sandbox", "calendar", "doctor", "notify", "review_links"),
    ("cli", "__main__", "web"),
)

KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}
"""Arrows that point up today, each with why; the test fails once one disappears, so this list
only shrinks."""


def _module_names() -> dict[str, Path]:
    names: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts) or "orchestrator"] = path
    return names


def _imports(path: Path, own: str, modules: dict[str, Path]) -> set[str]:
    """The orchestrator modules ``path`` imports, as names relative to the package."""
    found: set[str] = set()
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".") if package and package != "orchestrator" else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join([*base, node.module or ""]).strip(".")
                targets = ["orchestrator." + module if module else "orchestrator"]
            else:
                targets = [node.module or ""]
            targets += [f"{targets[0]}.{alias.name}" for alias in node.names]
        for target in targets:
            if target == "orchestrator":
                found.add("orchestrator")
            elif target.startswith("orchestrator."):
                name = target.removeprefix("orchestrator.")
                if name in modules:
                    found.add(name)
    found.discard(own)
    return found


def _layer(name: str) -> int:
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = name == prefix or (prefix != "orchestrator" and name.startswith(prefix + "."))
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def _arrows() -> dict[tuple[str, str], tuple[int, int]]:
    """Every import between two orchestrator modules, with both ends' layers."""
    arrows = {}
    modules = _module_names()
    for name, path in modules.items():
        for target in _imports(path, name, modules):
            arrows[(name, target)] = (_layer(name), _layer(target))
    return arrows


@pytest.fixture(scope="module")
def arrows() -> dict[tuple[str, str], tuple[int, int]]:
    """The walk, done once for the tests that read it (it parses every module)."""
    return _arrows()


def test_every_module_has_a_layer() -> None:
    """A new module must be placed in a layer on purpose (see the docstring)."""
    unplaced = sorted(name for name in _module_names() if _layer(name) < 0)
    assert not unplaced, f"place these in LAYERS: {unplaced}"


def test_no_module_imports_a_higher_layer(arrows: dict[tuple[str, str], tuple[int, int]]) -> None:
    """No arrow from a lower layer to a higher one, beyond the documented known exceptions."""
    upward = sorted(
        f"{source} (layer {low + 1}) imports {target} (layer {high + 1})"
        for (source, target), (low, high) in arrows.items()
        if high > low and (source, target) not in KNOWN_EXCEPTIONS
    )
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


def test_known_exceptions_still_exist(arrows: dict[tuple[str, str], tuple[int, int]]) -> None:
    """An exception that was fixed leaves the list (so the list only shrinks)."""
    gone = [pair for pair in KNOWN_EXCEPTIONS if pair not in arrows]
    assert not gone, f"fixed, remove from KNOWN_EXCEPTIONS: {gone}"


def test_the_walk_sees_the_imports(arrows: dict[tuple[str, str], tuple[int, int]]) -> None:
    """The scan finds known arrows (a broken scan would pass everything)."""
    assert ("store.journal", "upload.events") in arrows
    assert ("upload.driver", "transport") in arrows
    assert ("cli.validate", "runner") in arrows  # imported inside a function


@pytest.mark.parametrize(
    ("module", "heavier"),
    [
        pytest.param(
            "orchestrator.store.journal",
            [
                "requests",
                "urllib3",
                "tenacity",
                "orchestrator.transport",
                "orchestrator.tiktok.client",
                "orchestrator.upload.driver",
            ],
            id="journal",
        ),
        pytest.param(
            "orchestrator.store.tokens",
            [
                "requests",
                "urllib3",
                "orchestrator.transport",
                "orchestrator.tiktok.oauth",
                "orchestrator.tiktok.client",
            ],
            id="tokens",
        ),
    ],
)
def test_importing_the_store_loads_no_network_stack(module: str, heavier: list[str]) -> None:
    """Importing the store (in a fresh interpreter) loads nothing from the layers above it."""
    assert loaded_by_import(module, heavier) == []
