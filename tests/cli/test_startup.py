"""Start-up cost: commands that do not need the HTTP stack, the token store or rich skip them."""

from __future__ import annotations

import json
import subprocess
import sys

_HEAVY = (
    "requests",
    "urllib3",
    "rich",
    "cryptography",
    "jsonschema",
    "yaml",
    "orchestrator.store.tokens",
    "orchestrator.tiktok.oauth",
    "orchestrator.transport",
)

_PROBE = """
import json, sys
from orchestrator.cli import cli
try:
    cli(sys.argv[1:], prog_name="tiktok-orchestrator")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=True
    )
    modules: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return set(modules)


def test_help_imports_no_heavy_module() -> None:
    """`--help` loads click and the settings, not requests, rich, crypto, schemas or the store."""
    loaded = _modules_after("--help")
    assert "click" in loaded
    assert sorted(loaded.intersection(_HEAVY)) == []


def test_auth_help_imports_no_heavy_module() -> None:
    """`auth login --help` shows its defaults without importing the OAuth client or requests."""
    loaded = _modules_after("auth", "login", "--help")
    assert sorted(loaded.intersection(_HEAVY)) == []
