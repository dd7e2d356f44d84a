"""Reading a CSV manifest: a spreadsheet's rows to the data a version-1 manifest holds, with
every problem placed by row and column (``row 4, column privacy_level (C)``).

The file is what a spreadsheet program exports: UTF-8 with or without a byte-order mark (the
caller decodes it), comma, semicolon or tab as the separator (the one the header row uses
most), quoted cells holding separators, quotes or line breaks, CRLF or LF line ends. The header
row names the entry fields of the manifest schema; each further row is one entry. Cells are
text, so each is read as its field's schema type says: ``true``/``false`` (also ``yes``/``no``,
``1``/``0``, any case) for flags, a whole number for integers, ``tags`` split at spaces or
commas, ``photo_urls`` at spaces or line breaks (a URL may hold a comma). An empty cell means
"not set": the built-in default applies. A CSV has no ``defaults`` section.

Rows are numbered as a spreadsheet shows them: the header is row 1, the first entry row 2.

What this module must not do: judge the values beyond reading them as their type (the schema
and checks passes do that, placing their problems through the document's ``locator``).
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from orchestrator.manifest.model import DocPath, Problem

if TYPE_CHECKING:
    from orchestrator.manifest.documents import Document

SEPARATORS = (",", ";", "\t")
"""What spreadsheets export: comma, or semicolon where the comma is the decimal mark; tab."""

TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})
TEXT_FIELDS = frozenset({"description", "title"})
"""Cells kept exactly as written (other cells lose surrounding spaces)."""

_TAG_SPLIT = re.compile(r"[\s,]+")
_URL_SPLIT = re.compile(r"\s+")


@cache
def entry_field_types() -> Mapping[str, str]:
    """Each entry field of the manifest schema and its JSON type (``string`` for an enum), in
    the schema's order: the CSV columns a manifest may have."""
    # Imported here: the schema module imports documents, which imports this module.
    from orchestrator.manifest.schema import manifest_schema

    schema = manifest_schema()
    definitions = schema["$defs"]
    types: dict[str, str] = {}
    for name, spec in definitions["entry"]["properties"].items():
        if "$ref" in spec:
            spec = {**definitions[spec["$ref"].removeprefix("#/$defs/")], **spec}
        kind = spec.get("type", "string")
        types[name] = kind if isinstance(kind, str) else "string"
    return types


def column_letter(index: int) -> str:
    """A spreadsheet's name for a 0-based column: A … Z, AA, AB …"""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def detect_separator(text: str) -> str:
    """The separator the header row uses most (a comma when it has none: one column)."""
    header = text.split("\n", 1)[0]
    counts = {separator: header.count(separator) for separator in SEPARATORS}
    best = max(SEPARATORS, key=lambda separator: counts[separator])
    return best if counts[best] else ","


def parse_csv(text: str, document: Document) -> Document:
    """Fill ``document`` from a CSV text: data, problems, and the row/column locator."""
    reader = csv.reader(io.StringIO(text), delimiter=detect_separator(text), strict=True)
    records: list[tuple[int, list[str]]] = []
    try:
        for number, record in enumerate(reader, start=1):
            records.append((number, record))
    except csv.Error as exc:
        document.problems.append(
            Problem(
                f"row {len(records) + 1}",
                f"is not valid CSV ({exc})",
                "put a cell holding the separator, a quote or a line break in double quotes, "
                "and double any quote inside it",
            )
        )
        document.failed = True
        return document
    if not records or not any(cell.strip() for cell in records[0][1]):
        document.problems.append(
            Problem("row 1", "has no header", "name the entry fields in row 1, e.g. user_id")
        )
        document.failed = True
        return document
    columns = _header(records[0][1], document)
    if document.failed:
        return document
    rows: list[int] = []
    entries: list[dict[str, Any]] = []
    for number, record in records[1:]:
        if not any(cell.strip() for cell in record):
            continue  # a blank line between rows
        rows.append(number)
        entries.append(_entry(number, record, columns, document))
    document.data = {"version": 1, "entries": entries}
    document.locator = _locator(rows, columns)
    return document


def _header(cells: list[str], document: Document) -> dict[str, int]:
    """The columns by field name; unknown ones are reported and left out."""
    known = entry_field_types()
    columns: dict[str, int] = {}
    for index, cell in enumerate(cells):
        name = cell.strip().lower()
        where = f"row 1, column {column_letter(index)}"
        if not name:
            continue  # a trailing empty header cell: its values are reported per row
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
            document.problems.append(
                Problem(
                    where,
                    f"unknown field {cell.strip()!r}",
                    f"did you mean {close[0]!r}?"
                    if close
                    else "rename or remove the column; fields: " + ", ".join(known),
                )
            )
        elif name in columns:
            document.problems.append(
                Problem(
                    where,
                    f"{name!r} is also column {column_letter(columns[name])}",
                    "keep one of the two columns",
                )
            )
            document.failed = True
        else:
            columns[name] = index
    if "user_id" not in columns and not document.failed:
        document.problems.append(
            Problem(
                "row 1",
                "has no user_id column",
                "add a user_id column with each entry's open_id (as `auth list` shows it)",
            )
        )
        document.failed = True
    return columns


def _entry(
    row: int, record: list[str], columns: dict[str, int], document: Document
) -> dict[str, Any]:
    types = entry_field_types()
    entry: dict[str, Any] = {}
    named = set(columns.values())
    for index, cell in enumerate(record):
        if index not in named and cell.strip():
            document.problems.append(
                Problem(
                    f"row {row}, column {column_letter(index)}",
                    f"{_short(cell)} is under no header",
                    "name the column in row 1, or remove the value",
                )
            )
    for name, index in columns.items():
        cell = record[index] if index < len(record) else ""
        if not cell.strip():
            continue  # empty: not set
        where = f"row {row}, column {name} ({column_letter(index)})"
        kind = types[name]
        if kind == "boolean":
            word = cell.strip().lower()
            if word in TRUE_WORDS or word in FALSE_WORDS:
                entry[name] = word in TRUE_WORDS
            else:
                document.problems.append(
                    Problem(
                        where,
                        f"{_short(cell)} is not true or false",
                        "write TRUE or FALSE, or leave the cell empty for the default (false)",
                    )
                )
        elif kind == "integer":
            try:
                entry[name] = int(cell.strip())
            except ValueError:
                document.problems.append(
                    Problem(where, f"{_short(cell)} is not a whole number", "write digits only")
                )
        elif kind == "array":
            split = _TAG_SPLIT if name == "tags" else _URL_SPLIT
            entry[name] = [item for item in split.split(cell.strip()) if item]
        elif name in TEXT_FIELDS:
            entry[name] = cell.replace("\r\n", "\n")
        else:
            entry[name] = cell.strip()
    return entry


def _locator(rows: list[int], columns: dict[str, int]) -> Callable[[DocPath], str]:
    def locate(path: DocPath) -> str:
        if len(path) < 2 or path[0] != "entries" or not isinstance(path[1], int):
            return "manifest"
        index = path[1]
        row = rows[index] if 0 <= index < len(rows) else index + 2
        if len(path) == 2:
            return f"row {row}"
        name = str(path[2])
        if name in columns:
            return f"row {row}, column {name} ({column_letter(columns[name])})"
        return f"row {row}, column {name}"

    return locate


def _short(value: str, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
