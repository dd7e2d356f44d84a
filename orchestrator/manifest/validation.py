"""The use case behind ``validate`` (and the first step of ``run``): read the document, apply the
schema, run the semantic checks, and collect every problem of every pass before giving up.

What this module must not do: know how any one pass works; it only runs them in order.
"""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.errors import ManifestError
from orchestrator.manifest.checks import Checker
from orchestrator.manifest.documents import read_document
from orchestrator.manifest.model import Manifest, ManifestCheck, Problem, count_of
from orchestrator.manifest.schema import manifest_errors, schema_problems
from orchestrator.manifest.sources import PostedCheck
from orchestrator.media import Prober


def load_manifest(
    path: Path | str, *, prober: Prober | None = None, posted: PostedCheck | None = None
) -> Manifest:
    """Load and validate a manifest; raise ManifestError listing every problem if it is invalid.

    ``prober`` decides how video files are measured (default: ffprobe when installed, else the
    built-in readers). Sends no request: this is offline validation. With ``posted``, a video
    file that is gone is a note, not a problem, for an entry the journal holds as posted.
    """
    checked = check_manifest(path, prober=prober, posted=posted)
    if checked.manifest is None:
        count = len(checked.problems)
        raise ManifestError(
            f"{checked.path}: {count_of(count, 'problem', 'problems')} found; nothing was sent",
            [str(problem) for problem in checked.problems],
        )
    return checked.manifest


def check_manifest(
    path: Path | str, *, prober: Prober | None = None, posted: PostedCheck | None = None
) -> ManifestCheck:
    """Check a manifest and report every problem at once (never raises for a bad manifest)."""
    path = Path(path)
    document = read_document(path)
    problems = list(document.problems)
    if document.failed:
        return ManifestCheck(path, _sorted(problems), (), None)
    for error in manifest_errors(document.data):
        problems.extend(schema_problems(error, document))
    checker = Checker(
        document=document,
        base_dir=Path(os.path.abspath(path)).parent,
        prober=prober or Prober.detect(),
        posted=posted,
    )
    entries = checker.check()
    problems.extend(checker.problems)
    if entries is None and not problems:  # defensive: never fail without saying why
        problems.append(Problem("manifest", "could not be read as a manifest"))
    notes = tuple(checker.notes)
    if problems or entries is None:
        return ManifestCheck(path, _sorted(problems), notes, None)
    manifest = Manifest(path=path, form=document.form, entries=entries, notes=notes)
    return ManifestCheck(path, (), notes, manifest)


def _sorted(problems: list[Problem]) -> tuple[Problem, ...]:
    # File order: by line where known; problems without a line (file-level) first.
    return tuple(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
