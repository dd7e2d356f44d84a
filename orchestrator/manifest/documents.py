"""Reading a manifest document: bytes to plain data (JSON, YAML or CSV), with the line of any value
found when a problem needs placing.

JSON and YAML (``yaml.safe_load`` semantics: plain data only, object-building tags refused) are
read with line and column for syntax errors, and duplicate keys are reported rather than silently
overwritten. A valid YAML manifest is built straight from libyaml's events (the fast path); the
node tree with its lines is composed only for a document with a problem. A ``.csv`` file is
read by :mod:`.csvdoc`, whose problems are placed by row and column instead of line.

What this module must not do: judge the data (schema.py, checks.py) or read more than
``MAX_MANIFEST_BYTES`` of a file.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from orchestrator.manifest.csvdoc import parse_csv
from orchestrator.manifest.model import DocPath, ManifestForm, Problem

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
# A YAML alias can repeat a subtree many times over (the "billion laughs"); every walk of the
# document counts the values it visits and gives up past this many.
MAX_DOCUMENT_VALUES = 2_000_000
MAX_DOCUMENT_DEPTH = 64
"""Nesting levels a manifest may have (a real one has four: entries[i].photo_urls[j])."""


@dataclass
class Document:
    """A parsed manifest and how to find the line of any of its values."""

    data: Any = None
    failed: bool = False
    problems: list[Problem] = field(default_factory=list)
    line_finder: Callable[[], dict[DocPath, int]] | None = None
    locator: Callable[[DocPath], str] | None = None
    """How a CSV names a place (``row 4, column privacy_level (C)``); None: the field path."""
    _lines: dict[DocPath, int] | None = None

    @property
    def form(self) -> ManifestForm:
        return ManifestForm.LEGACY if isinstance(self.data, list) else ManifestForm.VERSION_1

    def line_of(self, path: DocPath) -> int | None:
        """The line of the value at ``path``, or of its nearest enclosing value."""
        if self._lines is None:
            self._lines = self.line_finder() if self.line_finder is not None else {}
        for end in range(len(path), -1, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def location(self, path: DocPath) -> str:
        if self.locator is not None:
            return self.locator(path)
        text = ""
        for part in path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text or "manifest"

    def problem(self, path: DocPath, message: str, fix: str | None = None) -> Problem:
        return Problem(self.location(path), message, fix, self.line_of(path))


def read_document(path: Path) -> Document:
    document = Document()
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        return _failed(document, "manifest file not found", "check the path")
    except IsADirectoryError:
        return _failed(document, "is a folder, not a manifest file", "give the manifest's path")
    except PermissionError:
        return _failed(document, "cannot be read (permission denied)", "check its permissions")
    except OSError as exc:
        return _failed(document, f"cannot be read ({exc.strerror or type(exc).__name__})")
    if len(raw) > MAX_MANIFEST_BYTES:
        return _failed(
            document,
            f"is larger than {MAX_MANIFEST_BYTES // 1024**2} MiB",
            "split it into several manifests",
        )
    text = _decode(raw, document)
    if text is None:
        return document
    if not text.strip():
        return _failed(document, "is empty", "write `version: 1` and a list of `entries`")
    if path.suffix.lower() == ".csv":
        return parse_csv(text, document)
    as_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() not in (".yaml", ".yml") and text.lstrip()[:1] in ("{", "[")
    )
    return _parse_json(text, document) if as_json else _parse_yaml(text, document)


def _failed(document: Document, message: str, fix: str | None = None) -> Document:
    document.problems.append(Problem("manifest", message, fix))
    document.failed = True
    return document


def _decode(raw: bytes, document: Document) -> str | None:
    # UTF-16 with a byte-order mark is what some Windows editors save.
    encoding = "utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        shown = "UTF-16" if encoding == "utf-16" else "UTF-8"
        _failed(
            document,
            f"is not valid {shown} text (byte {raw[exc.start]:#04x} at offset {exc.start})",
            "save the manifest as UTF-8",
        )
        return None


def _parse_json(text: str, document: Document) -> Document:
    duplicates = False

    def keep_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicates
        mapping: dict[str, Any] = {}
        for key, value in pairs:
            duplicates = duplicates or key in mapping
            mapping[key] = value
        return mapping

    try:
        document.data = json.loads(text, object_pairs_hook=keep_pairs)
    except json.JSONDecodeError as exc:
        document.problems.append(
            Problem(
                "manifest",
                f"invalid JSON: {exc.msg}",
                "look for a missing comma, quote or bracket just before that spot "
                "(JSON allows no trailing commas or comments)",
                exc.lineno,
                exc.colno,
            )
        )
        document.failed = True
        return document
    except RecursionError:
        return _failed(document, "is nested too deeply", "flatten it")
    scan = _JsonScan(text)
    document.line_finder = scan.lines
    if duplicates:
        found = scan.duplicates()
        for path, line, first in found:
            document.problems.append(
                Problem(
                    document.location(path),
                    f"duplicate key {path[-1]!r} (first set on line {first})",
                    "keep one of them: the later one would silently win",
                    line,
                )
            )
        if not found:  # the line scan gave up; the duplicate is still an error
            document.problems.append(
                Problem("manifest", "a key is set twice in the same object", "keep one of them")
            )
    return document


# The JSON string scanner json.loads itself uses (not in the type stubs).
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


class _JsonScan:
    """Line numbers of every value in a valid JSON text (json.loads does not keep them).

    Runs only when a line is needed (a problem to locate, a duplicate key to report).
    """

    _WHITESPACE = re.compile(r"[ \t\n\r]*")
    _SCALAR = re.compile(r"-?(?:Infinity|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|true|false|null|NaN")

    def __init__(self, text: str) -> None:
        self.text = text
        self._newlines: list[int] = []
        self._lines: dict[DocPath, int] = {}
        self._duplicates: list[tuple[DocPath, int, int]] = []
        self._scanned = False

    def lines(self) -> dict[DocPath, int]:
        self._scan()
        return self._lines

    def duplicates(self) -> list[tuple[DocPath, int, int]]:
        self._scan()
        return self._duplicates

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        self._newlines = [match.start() for match in re.finditer("\n", self.text)]
        # Lines are a courtesy: a problem without a line is still reported.
        with contextlib.suppress(RecursionError, ValueError, IndexError):
            self._value(0, ())

    def _line(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def _skip(self, pos: int) -> int:
        match = self._WHITESPACE.match(self.text, pos)
        return match.end() if match else pos

    def _value(self, pos: int, path: DocPath) -> int:
        pos = self._skip(pos)
        self._lines.setdefault(path, self._line(pos))
        char = self.text[pos]
        if char == "{":
            return self._object(pos + 1, path)
        if char == "[":
            return self._array(pos + 1, path)
        if char == '"':
            return int(_scanstring(self.text, pos + 1)[1])
        match = self._SCALAR.match(self.text, pos)
        if match is None:
            raise ValueError(f"unexpected {char!r}")
        return match.end()

    def _object(self, pos: int, path: DocPath) -> int:
        seen: dict[str, int] = {}
        pos = self._skip(pos)
        if self.text[pos] == "}":
            return pos + 1
        while True:
            pos = self._skip(pos)
            key_line = self._line(pos)
            key, pos = _scanstring(self.text, pos + 1)
            if key in seen:
                self._duplicates.append(((*path, key), key_line, seen[key]))
            else:
                seen[key] = key_line
            self._lines[(*path, key)] = key_line
            pos = self._skip(pos) + 1  # the colon
            pos = self._skip(self._value(pos, (*path, key)))
            if self.text[pos] == "}":
                return pos + 1
            pos += 1  # the comma

    def _array(self, pos: int, path: DocPath) -> int:
        pos = self._skip(pos)
        if self.text[pos] == "]":
            return pos + 1
        index = 0
        while True:
            pos = self._skip(self._value(pos, (*path, index)))
            index += 1
            if self.text[pos] == "]":
                return pos + 1
            pos += 1


_TAG_PREFIX = "tag:yaml.org,2002:"
_TIMESTAMP_TAG = _TAG_PREFIX + "timestamp"
_PLAIN_TAGS = {
    _TAG_PREFIX + name
    for name in ("str", "int", "float", "bool", "null", "seq", "map", "merge", "timestamp")
}
_YamlBase: Any = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader


class _ManifestLoader(_YamlBase):  # type: ignore[misc]
    """``yaml.safe_load``'s loader (the C one when available), except that timestamps stay
    strings: ``publish_at`` is parsed by us, so a missing timezone is reported, not guessed."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in _YamlBase.yaml_implicit_resolvers.items()
}
_ManifestLoader.add_constructor(_TIMESTAMP_TAG, _YamlBase.construct_yaml_str)


def _parse_yaml(text: str, document: Document) -> Document:
    """Parse YAML: the fast path when it can vouch for the document, else the full one.

    Line numbers are only needed to place problems, so a document the fast path accepts gets
    its line map composed later, if and when a problem asks for one.
    """
    fast = _FastYaml(text).build()
    if fast is _FALLBACK:
        return _parse_yaml_with_lines(text, document)
    document.data = fast
    document.line_finder = lambda: _yaml_lines_of(text)
    return document


def _yaml_lines_of(text: str) -> dict[DocPath, int]:
    """The line map of a YAML text the fast path accepted (it parses, so no problem here)."""
    finder = _parse_yaml_with_lines(text, Document()).line_finder
    return {} if finder is None else finder()


_FALLBACK: Final = object()


class _FastYaml:
    """Build a YAML document's data straight from libyaml's events, without composing nodes.

    Taken only for plain data: the moment anything the full path reports or treats specially
    appears — an explicit tag, an anchor or alias (and with them merge keys and alias bombs), a
    key that is not text or is repeated, deep nesting, very many values, a syntax error, more
    or fewer than one document — :meth:`build` returns ``_FALLBACK`` and the caller takes the
    full path, which finds and places the problem. What it builds is what ``_ManifestLoader``
    would (plain scalars resolved and constructed by that loader, cached per distinct text).
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._plain: dict[str, Any] = {}
        # A plain scalar is resolved by its first character (PyYAML's implicit resolvers are
        # keyed by it, "" for the empty one); any other first character makes it a string.
        self._resolvable = frozenset(_ManifestLoader.yaml_implicit_resolvers)

    def build(self) -> Any:
        loader = _ManifestLoader(self._text)
        try:
            return self._build(loader)
        except yaml.YAMLError:
            return _FALLBACK
        finally:
            loader.dispose()

    def _build(self, loader: Any) -> Any:
        # Each open container collects its values in a list (a mapping's keys and values
        # alternate), made into the list or dict when it closes: one append per value.
        get_event = loader.get_event
        if type(get_event()) is not yaml.StreamStartEvent:
            return _FALLBACK
        if type(get_event()) is not yaml.DocumentStartEvent:
            return _FALLBACK  # an empty stream: the full path says so
        plain = self._plain
        resolvable = self._resolvable
        open_items: list[list[Any]] = [[]]  # the document itself holds the root
        values = 0
        while True:
            event = get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                if event.anchor is not None or event.tag is not None:
                    return _FALLBACK
                text = event.value
                if event.implicit[0] and text[:1] in resolvable:
                    value = plain.get(text, _FALLBACK)
                    if value is _FALLBACK:
                        value = plain[text] = self._construct_plain(loader, text)
                    open_items[-1].append(value)
                else:
                    open_items[-1].append(text)  # quoted, block or plain text: a string
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                if event.anchor is not None or event.tag is not None:
                    return _FALLBACK
                if len(open_items) >= MAX_DOCUMENT_DEPTH:
                    return _FALLBACK
                open_items.append([])
            elif kind is yaml.SequenceEndEvent:
                items = open_items.pop()
                values += len(items) + 1
                open_items[-1].append(items)
            elif kind is yaml.MappingEndEvent:
                items = open_items.pop()
                keys = items[0::2]
                # Keys are text only (never a merge `<<`, a number or a container) and unique.
                if not all(type(key) is str for key in keys):
                    return _FALLBACK
                mapping = dict(zip(keys, items[1::2], strict=True))
                if len(mapping) != len(keys):
                    return _FALLBACK
                values += len(items) + 1
                open_items[-1].append(mapping)
            elif kind is yaml.DocumentEndEvent:
                break
            else:
                return _FALLBACK  # an alias
            if values > MAX_DOCUMENT_VALUES:
                return _FALLBACK
        if type(get_event()) is not yaml.StreamEndEvent:
            return _FALLBACK  # another document: the full path refuses it
        (root,) = open_items[0]
        return root

    @staticmethod
    def _construct_plain(loader: Any, text: str) -> Any:
        tag = loader.resolve(yaml.ScalarNode, text, (True, False))
        if tag not in _PLAIN_TAGS or tag == _TAG_PREFIX + "merge":
            raise yaml.YAMLError("not plain data")  # the full path reports or merges it
        return loader.construct_object(yaml.ScalarNode(tag, text))


def _indented_with_tab(text: str, line: int) -> bool:
    """Whether line ``line`` (0-based) of ``text`` has a tab in its indentation."""
    lines = text.splitlines()
    if not 0 <= line < len(lines):
        return False
    row = lines[line]
    return "\t" in row[: len(row) - len(row.lstrip(" \t"))]


def _parse_yaml_with_lines(text: str, document: Document) -> Document:
    loader = _ManifestLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return _failed(document, "is empty", "write `version: 1` and a list of `entries`")
        lines = _yaml_lines(node, document)
        if not document.failed:
            document.data = loader.construct_document(node)
            document.line_finder = lambda: lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = f"invalid YAML: {_yaml_reason(exc)}"
        fix = (
            "check the indentation and quoting there; quote text containing ': ' or "
            "starting with a special character"
        )
        if mark is not None and _indented_with_tab(text, mark.line):
            reason = "YAML does not allow tabs for indentation"
            fix = "indent with spaces instead of tabs"
        document.problems.append(
            Problem(
                "manifest",
                reason,
                fix,
                None if mark is None else mark.line + 1,
                None if mark is None else mark.column + 1,
            )
        )
        document.failed = True
    except yaml.YAMLError as exc:
        _failed(document, f"invalid YAML: {exc}")
    except RecursionError:
        _failed(document, "is nested too deeply", "flatten it")
    finally:
        loader.dispose()
    return document


def _yaml_reason(exc: yaml.MarkedYAMLError) -> str:
    # PyYAML splits its message: "expected a single document in the stream" (context) and
    # "but found another document" (problem). Both together read as a sentence.
    if exc.problem and exc.context:
        return f"{exc.problem} ({exc.context})"
    return exc.problem or exc.context or "unreadable YAML"


def _yaml_lines(root: yaml.Node, document: Document) -> dict[DocPath, int]:
    """Walk the YAML node tree: lines of every value, duplicate keys, refused tags.

    Counts every value visited, aliases included, so an alias bomb stops here instead of in
    the schema validator.
    """
    lines: dict[DocPath, int] = {}
    refused: set[int] = set()
    visited = 0
    stack: list[tuple[yaml.Node, DocPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        visited += 1
        if visited > MAX_DOCUMENT_VALUES:
            _failed(
                document,
                f"expands to more than {MAX_DOCUMENT_VALUES:,} values (aliases repeated "
                "many times over?)",
                "write the manifest without deeply repeated aliases",
            )
            return lines
        if len(path) > MAX_DOCUMENT_DEPTH:
            # A recursive alias (`a: &a [*a]`) nests without end: each step's path is longer,
            # so walking it to the value limit would take memory quadratic in that limit.
            _failed(
                document,
                f"nests values more than {MAX_DOCUMENT_DEPTH} levels deep (an alias that "
                "refers to itself?)",
                "write the manifest without recursive aliases",
            )
            return lines
        lines.setdefault(path, node.start_mark.line + 1)
        if node.tag not in _PLAIN_TAGS and id(node) not in refused:
            refused.add(id(node))  # once, however many aliases repeat it
            shown = node.tag.replace(_TAG_PREFIX, "!!")
            document.problems.append(
                Problem(
                    document.location(path),
                    f"YAML tag {shown!r} is not allowed: a manifest holds plain data only",
                    "remove the tag",
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                )
            )
            document.failed = True
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _TAG_PREFIX + "merge":
                    stack.append((value_node, path))
                    continue
                key_line = key_node.start_mark.line + 1
                if key_node.tag != _TAG_PREFIX + "str":
                    # A manifest's keys are field names: `?`, `1:`, `true:` or `[a]:` would give
                    # a key of another type, which no field has and no location can name.
                    shown = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
                    if isinstance(key_node, yaml.ScalarNode):
                        shown = repr(key_node.value) if key_node.value else "(empty)"
                    document.problems.append(
                        Problem(
                            document.location(path),
                            f"the key {shown} is not text: keys are field names",
                            "write the field's name, or quote the key",
                            key_line,
                        )
                    )
                    document.failed = True
                    continue
                key = str(key_node.value)
                identity = (key_node.tag, key)
                if identity in seen and isinstance(key_node, yaml.ScalarNode):
                    document.problems.append(
                        Problem(
                            document.location((*path, key)),
                            f"duplicate key {key!r} (first set on line {seen[identity]})",
                            "keep one of them: the later one would silently win",
                            key_line,
                        )
                    )
                seen.setdefault(identity, key_line)
                lines.setdefault((*path, key), key_line)
                stack.append((key_node, (*path, key)))
                stack.append((value_node, (*path, key)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*path, index)))
    return lines
