"""The audit kit (docs/audit/make_audit_kit.py) in a real browser: one command writes a
screenshot for every §11 element, the video of the flow and the Markdown page mapping them."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.web.browser.conftest import _missing, chromium_path

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCRIPT = Path(__file__).resolve().parents[3] / "docs" / "audit" / "make_audit_kit.py"


def _kit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_audit_kit", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_kit_shows_every_section_11_element(tmp_path: Path) -> None:
    """Every §11 requirement (1-5), the duration limit included, maps to screenshots that
    exist; the video is not empty."""
    if importlib.util.find_spec("playwright") is None:
        _missing("playwright is not installed (pip install 'tiktok-orchestrator[browser]')")
    if chromium_path() is None:
        _missing("no Chromium (apt-get install chromium)")
    if shutil.which("ffmpeg") is None:
        _missing("no ffmpeg (apt-get install ffmpeg)")
    kit = _kit()
    out = tmp_path / "kit"
    assert kit.main(["--out", str(out)]) == 0

    assert {req.section for req in kit.REQUIREMENTS} == {"1", "2", "3", "4", "5"}
    assert [req.text for req in kit.REQUIREMENTS if not req.shots] == []
    (duration,) = [req for req in kit.REQUIREMENTS if "max_video_post_duration_sec" in req.text]
    assert duration.shots == ("07b-too-long",)
    for step in kit.STEPS:
        png = out / f"{step.name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    audit = (out / "AUDIT.md").read_text(encoding="utf-8")
    for req in kit.REQUIREMENTS:
        row = next(line for line in audit.splitlines() if req.text in line)
        linked = re.findall(r"\]\(([^)]+\.png)\)", row)
        assert linked == [f"{name}.png" for name in req.shots], row
        for name in linked:
            assert (out / name).is_file(), name
    for element in ("Music Usage Confirmation", "Branded Content Policy", "no default"):
        assert element in audit
    video = out / "flow.webm"
    assert video.stat().st_size > 10_000
    assert video.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file
