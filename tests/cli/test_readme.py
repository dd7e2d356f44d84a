"""The README cannot lie: its runnable commands run, its tables match the code they describe."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.manifest import manifest_schema
from orchestrator.tiktok.codes import ERROR_CODES, FAIL_REASONS, ORCHESTRATOR_CODES

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _runnable_blocks() -> list[str]:
    return re.findall(r"<!-- runnable -->\n```sh\n(.*?)```", README, flags=re.DOTALL)


_DEMO = "python -m orchestrator run --sandbox manifests/demo.yaml"


def _block_params() -> list[object]:
    # The demo block is exactly what test_sandbox_demo_publishes_and_reports runs (and checks
    # further) in the fast tier; run as written, it is in the slow tier.
    return [
        pytest.param(block, marks=pytest.mark.slow) if block.strip() == _DEMO else block
        for block in _runnable_blocks()
    ]


@pytest.mark.parametrize("block", _block_params())
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
    assert any(block.strip() == _DEMO for block in _runnable_blocks())


def test_sandbox_demo_publishes_and_reports(tmp_path: Path) -> None:
    """The demo posts its entries, defers the scheduled one, and writes the report it names."""
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    done = subprocess.run(
        [sys.executable, *_DEMO.split()[1:]],
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


# Calls whose code argument ends up in a report: (position of the code argument, or None).
_CODE_CALLS = {"ErrorInfo": 0, "_error_info": 1, "ApiError": 0}


def _code_strings(node: ast.expr, names: dict[str, list[ast.expr]]) -> set[str]:
    """The string values ``node`` can take: a literal, either branch of ``a if c else b``, each
    side of ``a or b``, ``str(x)``, and a local name through whatever was assigned to it."""
    if isinstance(node, ast.Constant):
        return {node.value} if isinstance(node.value, str) and node.value else set()
    if isinstance(node, ast.IfExp):
        return _code_strings(node.body, names) | _code_strings(node.orelse, names)
    if isinstance(node, ast.BoolOp):
        return set().union(*(_code_strings(value, names) for value in node.values))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str":
        return set().union(*(_code_strings(arg, names) for arg in node.args))
    if isinstance(node, ast.Name):
        values = names.pop(node.id, [])  # popped: a name assigned from itself ends the walk
        found = set().union(*(_code_strings(value, names) for value in values))
        names[node.id] = values
        return found
    return set()


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``scope`` outside the functions nested in it (each is its own scope)."""
    pending = list(ast.iter_child_nodes(scope))
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            pending.extend(ast.iter_child_nodes(node))


def _assignments(scope: ast.AST) -> dict[str, list[ast.expr]]:
    """Every value assigned to each plain name in ``scope`` itself."""
    names: dict[str, list[ast.expr]] = {}
    for node in _own_nodes(scope):
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target.id] if isinstance(node.target, ast.Name) else []
        else:
            continue
        for target in targets:
            names.setdefault(target, []).append(node.value)  # type: ignore[arg-type]
    return names


def emitted_codes(source: str) -> set[str]:
    """The error codes a module can put in a report, however they reach it: a literal passed to
    ``ErrorInfo``/``_error_info``/``ApiError`` or as ``code=``, a variable holding one, or a
    constant whose name ends in ``CODE``."""
    tree = ast.parse(source)
    module_names = _assignments(tree)
    codes: set[str] = set()
    scopes: list[ast.AST] = [tree]
    scopes += [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for scope in scopes:
        names = module_names if scope is tree else {**module_names, **_assignments(scope)}
        for node in _own_nodes(scope):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                position = _CODE_CALLS.get(called)
                if position is not None and len(node.args) > position:
                    codes |= _code_strings(node.args[position], names)
                for keyword in node.keywords:
                    if keyword.arg == "code":
                        codes |= _code_strings(keyword.value, names)
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id.endswith("CODE") for t in targets):
                    codes |= _code_strings(node.value, names)
    return codes


def test_the_code_scan_finds_codes_assigned_through_variables() -> None:
    """The scan below sees a code however it is spelt: literal, variable, branch, keyword."""
    source = """
def f(error, chunked):
    code = "via_branch_a" if chunked else "via_branch_b"
    fallback = "via_variable"
    reason = fallback
    ErrorInfo(code, "m")
    ErrorInfo(reason, "m")
    ErrorInfo("via_literal", "m")
    ErrorInfo(code=error.code or "via_keyword", message="m")
    _error_info(error, "via_helper")
    Deferred("m", code="via_event")
RETRY_CODE = "via_constant"
"""
    assert emitted_codes(source) == {
        "via_branch_a",
        "via_branch_b",
        "via_variable",
        "via_literal",
        "via_keyword",
        "via_helper",
        "via_event",
        "via_constant",
    }


def test_every_code_the_orchestrator_emits_is_in_its_table() -> None:
    """Every error code the source can put in a report is in ORCHESTRATOR_CODES or TikTok's
    tables (and so in the README), however the code reaches ErrorInfo."""
    emitted: set[str] = set()
    for path in (ROOT / "orchestrator").rglob("*.py"):
        if "sandbox" in path.parts:
            continue
        emitted |= emitted_codes(path.read_text())
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
