"""The README cannot lie: its runnable commands run, its tables match the code they describe."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.manifest import manifest_schema
from orchestrator.tiktok.codes import ERROR_CODES, FAIL_REASONS, ORCHESTRATOR_CODES

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _runnable_blocks() -> list[str]:
    return re.findall(r"<!-- runnable -->\n```sh\n(.*?)```", README, flags=re.DOTALL)


@pytest.mark.parametrize("block", _runnable_blocks())
def test_runnable_readme_block_succeeds(block: str, tmp_path: Path) -> None:
    """Each shell block marked runnable exits 0 as written, from a copy of the project's files."""
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    shutil.copy(ROOT / "videos_to_upload.example.json", tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_there_is_a_runnable_block_for_the_sandbox_demo() -> None:
    """The README's first command, the sandbox demo, is among the blocks the suite runs."""
    assert any("run --sandbox manifests/demo.yaml" in block for block in _runnable_blocks())


def test_sandbox_demo_publishes_and_reports(tmp_path: Path) -> None:
    """The demo posts its entries, defers the scheduled one, and writes the report it names."""
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "--sandbox", "manifests/demo.yaml"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    match = re.search(r"^report: (\S+)$", done.stdout, flags=re.MULTILINE)
    assert match is not None, done.stdout
    report = json.loads((tmp_path / match.group(1)).read_text())
    statuses = {entry["id"]: entry["status"] for entry in report["entries"]}
    assert statuses == {
        "studio-tour": "published",
        "edit-tips-draft": "sent_to_inbox",
        "mood-board": "published",
        "launch-teaser": "deferred",
    }


def test_manifest_reference_matches_the_schema() -> None:
    """The README's manifest table lists exactly the schema's entry fields."""
    section = README.split("## Manifest reference", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))
    schema = manifest_schema()
    assert documented == set(schema["$defs"]["entry"]["properties"])
    in_defaults = set(re.findall(r"^\| `(\w+)` \| yes \|", section, flags=re.MULTILINE))
    assert in_defaults == set(schema["$defs"]["defaults"]["properties"])


def test_every_error_code_has_a_troubleshooting_line() -> None:
    """Every TikTok code, fail_reason and orchestrator code in a report is explained."""
    section = README.split("## Troubleshooting by error code", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))
    expected = set(ERROR_CODES) | set(FAIL_REASONS) | set(ORCHESTRATOR_CODES)
    assert expected <= documented, sorted(expected - documented)


def test_every_code_the_orchestrator_emits_is_in_its_table() -> None:
    """Literal error codes in the source are all in ORCHESTRATOR_CODES (and so the README)."""
    emitted: set[str] = set()
    for path in (ROOT / "orchestrator").rglob("*.py"):
        if "sandbox" in path.parts:
            continue
        text = path.read_text()
        emitted |= set(re.findall(r'ErrorInfo\(\s*"(\w+)"', text))
        emitted |= set(re.findall(r'_error_info\(\w+, "(\w+)"\)', text))
    known = set(ERROR_CODES) | set(FAIL_REASONS) | set(ORCHESTRATOR_CODES)
    assert emitted, "the scan found no codes: the pattern is broken"
    assert emitted <= known, sorted(emitted - known)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the shipped units (the binary path swapped for a real one)."""
    units = []
    for unit in sorted((ROOT / "contrib").glob("tiktok-orchestrator*.*")):
        text = unit.read_text().replace(
            "/opt/tiktok-orchestrator/bin/tiktok-orchestrator", "/bin/true"
        )
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
