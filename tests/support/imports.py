"""What importing a module loads, seen from a fresh interpreter (this one has loaded everything)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable


def loaded_by_import(module: str, candidates: Iterable[str]) -> list[str]:
    """The ``candidates`` found in ``sys.modules`` after a fresh interpreter imports ``module``."""
    code = (
        f"import json, sys, {module}\n"
        f"print(json.dumps([m for m in {sorted(candidates)!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded
