"""``manifest convert``: a manifest from one of CSV, YAML and JSON to another, losslessly, and
the writer of each format (``manifest new`` writes through it too).

Lossless means the same entries with the same values: a CSV has no ``defaults`` section, so
converting to CSV writes each default into the entries that do not set it (what the run would
do anyway); converting from CSV gives a version-1 manifest with no defaults. A relative
``video_path`` is relative to the manifest's folder, so it is rewritten for the new file's
folder when that differs. Only a document that passes the schema is converted: a value of the
wrong type (``"yes"`` for a flag) could not be written back the same way.

What this module must not do: check media files (``validate`` does), or overwrite a file
unless asked.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ManifestError, UsageError
from orchestrator.files import write_atomic
from orchestrator.manifest.csvdoc import entry_field_types
from orchestrator.manifest.documents import read_document
from orchestrator.manifest.model import count_of
from orchestrator.manifest.schema import manifest_errors, schema_problems

FORMATS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def manifest_format(path: Path) -> str:
    """``csv``, ``yaml`` or ``json`` from the file's extension; UsageError for any other."""
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise UsageError(
            f"{path}: cannot tell the manifest format from {path.suffix or 'no extension'!r}",
            hint="name the file .csv, .yaml (or .yml) or .json",
        )
    return found


def read_manifest_data(path: Path) -> Any:
    """The plain data of a manifest that parses and passes the schema; ManifestError listing
    every problem otherwise (the media files are not looked at)."""
    document = read_document(path)
    problems = list(document.problems)
    if not document.failed:
        for error in manifest_errors(document.data):
            problems.extend(schema_problems(error, document))
    if problems:
        raise ManifestError(
            f"{path}: {count_of(len(problems), 'problem', 'problems')} found; nothing converted",
            [str(problem) for problem in problems],
        )
    return document.data


def entries_of(data: Any) -> list[dict[str, Any]]:
    """Each entry with the manifest's ``defaults`` written into it (either form)."""
    if isinstance(data, list):
        return [dict(entry) for entry in data]
    defaults = data.get("defaults") or {}
    return [{**defaults, **entry} for entry in data["entries"]]


def dump_manifest(data: Any, kind: str) -> bytes:
    """A manifest's bytes in ``kind`` (csv, yaml or json)."""
    if kind == "csv":
        return _dump_csv(entries_of(data))
    if not isinstance(data, dict) and kind != "json":
        data = {"version": 1, "entries": data}  # the legacy form is JSON-only by name
    if kind == "json":
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return text.encode("utf-8")


def write_manifest(path: Path, data: bytes, *, force: bool) -> None:
    """Write a manifest atomically; refuse to replace an existing file unless ``force``."""
    refuse_existing(path, force=force)
    write_atomic(path, data)


def refuse_existing(path: Path, *, force: bool) -> None:
    """UsageError when ``path`` exists and ``force`` is not given."""
    if path.exists() and not force:
        raise UsageError(
            f"{path} already exists; nothing was written",
            hint="give another output path, or --force to replace it",
        )


def convert_manifest(source: Path, target: Path, *, force: bool = False) -> int:
    """Convert ``source`` to ``target`` (formats from their extensions); the number of entries.

    Raises ManifestError (the source has problems), UsageError (an unknown extension, or the
    target exists without ``force``), FileWriteError.
    """
    kind = manifest_format(target)
    manifest_format(source)
    refuse_existing(target, force=force)  # before the work, not after it
    data = rebase_paths(read_manifest_data(source), source.parent, target.parent)
    write_manifest(target, dump_manifest(data, kind), force=force)
    return len(entries_of(data))


def rebase_paths(data: Any, old_folder: Path, new_folder: Path) -> Any:
    """``data`` with each relative ``video_path`` made relative to ``new_folder``."""
    old, new = os.path.abspath(old_folder), os.path.abspath(new_folder)
    if old == new:
        return data

    def rebase(entry: dict[str, Any]) -> dict[str, Any]:
        value = entry.get("video_path")
        if not isinstance(value, str) or value.startswith("~") or os.path.isabs(value):
            return entry
        moved = os.path.relpath(os.path.join(old, value), new)
        return {**entry, "video_path": Path(moved).as_posix()}

    if isinstance(data, list):
        return [rebase(entry) for entry in data]
    return {**data, "entries": [rebase(entry) for entry in data["entries"]]}


def _dump_csv(entries: list[dict[str, Any]]) -> bytes:
    fields = [name for name in entry_field_types() if any(name in e for e in entries)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(fields)
    for entry in entries:
        writer.writerow([_cell(entry.get(name)) for name in fields])
    # With a byte-order mark: spreadsheet programs then read the file as UTF-8, not the
    # machine's legacy code page (captions have accents and emoji).
    return buffer.getvalue().encode("utf-8-sig")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return str(value)
