"""The manifest: load JSON or YAML, validate it, and turn it into immutable entries (SPEC §3).

Validation runs in three passes and collects every problem of every pass before giving up:

1. parse — JSON or YAML (``yaml.safe_load`` semantics: plain data only, object-building tags
   refused), with line and column for syntax errors, duplicate keys reported rather than silently
   overwritten, and the line of any value found when a problem needs placing (a valid YAML
   manifest is built from libyaml's events; the node tree with its lines is composed only for
   a document with a problem);
2. schema — the shipped JSON Schema (draft 2020-12, ``schemas/manifest.schema.json``), each error
   turned into ``location: what is wrong (line N); fix: how to fix it``;
3. semantics — what a schema cannot say: exactly one media source, the file exists and is a
   regular MP4/MOV/WebM file within TikTok's limits (probed once per distinct file), caption
   lengths in UTF-16 units, a timezone on ``publish_at``, two entries that would be the same post.

:func:`load_manifest` is the use case behind ``validate`` (and the first step of ``run``).
:func:`entry_identity` is the journal's key for an entry (SPEC §5).

What this module must not do: touch the network or the token store, print, or read more of a
video than media.py allows (a few KB to probe it, 2 MiB to fingerprint it).
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import hashlib
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

import jsonschema
import jsonschema.validators
import yaml

from orchestrator.errors import ManifestError, MediaError
from orchestrator.media import (
    ContentType,
    FileMedia,
    Media,
    MediaInfo,
    PhotoMedia,
    Prober,
    VideoUrlMedia,
    fingerprint_file,
    media_fingerprint,
)

CAPTION_MAX_UNITS = 2200  # video post_info.title (tiktok-api.md §4)
PHOTO_TITLE_MAX_UNITS = 90  # photo post_info.title (§6)
PHOTO_DESCRIPTION_MAX_UNITS = 4000  # photo post_info.description (§6)
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
# A YAML alias can repeat a subtree many times over (the "billion laughs"); every walk of the
# document counts the values it visits and gives up past this many.
MAX_DOCUMENT_VALUES = 2_000_000
MAX_DOCUMENT_DEPTH = 64
"""Nesting levels a manifest may have (a real one has four: entries[i].photo_urls[j])."""

_E = TypeVar("_E", bound=StrEnum)
DocPath = tuple[str | int, ...]  # a location in the document: ("entries", 3, "privacy_level")


class Mode(StrEnum):
    """direct: publish now; inbox: send to the creator's inbox as a draft."""

    DIRECT = "direct"
    INBOX = "inbox"


class PrivacyLevel(StrEnum):
    """Who may see a post (one of the creator's ``privacy_level_options``)."""

    PUBLIC_TO_EVERYONE = "PUBLIC_TO_EVERYONE"
    MUTUAL_FOLLOW_FRIENDS = "MUTUAL_FOLLOW_FRIENDS"
    FOLLOWER_OF_CREATOR = "FOLLOWER_OF_CREATOR"
    SELF_ONLY = "SELF_ONLY"


class ManifestForm(StrEnum):
    """Which of the two manifest forms a file uses."""

    VERSION_1 = "version 1"
    LEGACY = "legacy"


# What an entry gets when neither it nor ``defaults`` says otherwise. SELF_ONLY is the only
# privacy an unaudited app may use, and the safe choice for the legacy form, which has no field
# for it.
BUILT_IN_DEFAULTS: Mapping[str, object] = MappingProxyType(
    {
        "mode": "direct",
        "privacy_level": "SELF_ONLY",
        "disable_comment": False,
        "disable_duet": False,
        "disable_stitch": False,
        "is_aigc": False,
        "brand_content_toggle": False,
        "brand_organic_toggle": False,
        "auto_add_music": False,
    }
)
_MEDIA_FIELDS = ("video_path", "video_url", "photo_urls")
_VIDEO_ONLY_FIELDS = ("video_cover_timestamp_ms", "disable_duet", "disable_stitch")
_PHOTO_ONLY_FIELDS = ("title", "photo_cover_index", "auto_add_music")
# Fields the inbox video endpoint does not take (it documents source_info only).
_POST_INFO_FIELDS = (
    "description",
    "tags",
    "privacy_level",
    "disable_comment",
    "disable_duet",
    "disable_stitch",
    "is_aigc",
    "brand_content_toggle",
    "brand_organic_toggle",
    "video_cover_timestamp_ms",
)
_HASHTAG = re.compile(r"#(\w+)")


# -- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest: where, what, and how to fix it."""

    location: str
    message: str
    fix: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.line is not None:
            where = f" (line {self.line}" + (
                f", column {self.column})" if self.column is not None else ")"
            )
        text = f"{self.location}: {self.message}{where}"
        return f"{text}; fix: {self.fix}" if self.fix else text


@dataclass(frozen=True)
class Entry:
    """One post for one user, normalised: defaults applied, paths resolved, caption built.

    ``caption`` is the text TikTok shows: for a video, ``post_info.title`` (description and
    tags); for a photo post, ``post_info.description`` (the same), next to ``title``.
    ``media_info`` is the probe of a file source (None for URL and photo sources).
    """

    index: int
    location: str
    id: str | None
    user_id: str
    mode: Mode
    media: Media
    caption: str
    title: str | None
    privacy_level: PrivacyLevel
    disable_comment: bool
    disable_duet: bool
    disable_stitch: bool
    is_aigc: bool
    brand_content_toggle: bool
    brand_organic_toggle: bool
    video_cover_timestamp_ms: int | None
    auto_add_music: bool
    publish_at: datetime | None
    media_info: MediaInfo | None = None

    @property
    def is_photo(self) -> bool:
        return isinstance(self.media, PhotoMedia)

    @property
    def content_type(self) -> ContentType | None:
        """Content-Type for the chunk PUTs of a file source."""
        return None if self.media_info is None else self.media_info.content_type

    @property
    def duration_s(self) -> float | None:
        """The video's duration when it could be measured (compare with creator_info's max)."""
        return None if self.media_info is None else self.media_info.duration_s


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: where it came from, its form, its entries in file order, and notes
    about checks that could not be made (e.g. a frame rate without ffprobe)."""

    path: Path
    form: ManifestForm
    entries: tuple[Entry, ...]
    notes: tuple[str, ...] = ()

    @property
    def users(self) -> tuple[str, ...]:
        """The distinct user_ids, in order of first appearance."""
        return tuple(dict.fromkeys(entry.user_id for entry in self.entries))

    def summary(self) -> str:
        """One line: ``ok: N entries for M users: X direct, Y inbox, Z photo; W scheduled``."""
        photos = sum(1 for entry in self.entries if entry.is_photo)
        videos = [entry for entry in self.entries if not entry.is_photo]
        direct = sum(1 for entry in videos if entry.mode is Mode.DIRECT)
        scheduled = sum(1 for entry in self.entries if entry.publish_at is not None)
        return (
            f"ok: {_count(len(self.entries), 'entry', 'entries')} for "
            f"{_count(len(self.users), 'user', 'users')}: {direct} direct, "
            f"{len(videos) - direct} inbox, {photos} photo; {scheduled} scheduled"
        )


@dataclass(frozen=True)
class ManifestCheck:
    """The outcome of checking a manifest: every problem, notes, and the manifest if valid."""

    path: Path
    problems: tuple[Problem, ...]
    notes: tuple[str, ...]
    manifest: Manifest | None


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


# -- the use case ---------------------------------------------------------------------------------


PostedCheck = Callable[[str | None, str, Mode, Path], bool]
"""(entry id, user_id, mode, video path) → whether the journal holds that entry as posted."""


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
            f"{checked.path}: {_count(count, 'problem', 'problems')} found; nothing was sent",
            [str(problem) for problem in checked.problems],
        )
    return checked.manifest


def check_manifest(
    path: Path | str, *, prober: Prober | None = None, posted: PostedCheck | None = None
) -> ManifestCheck:
    """Check a manifest and report every problem at once (never raises for a bad manifest)."""
    path = Path(path)
    document = _read_document(path)
    problems = list(document.problems)
    if document.failed:
        return ManifestCheck(path, _sorted(problems), (), None)
    validator = _validator()
    for error in validator.iter_errors(document.data):
        problems.extend(_schema_problems(error, document))
    checker = _Checker(
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


# -- identity (SPEC §5) ---------------------------------------------------------------------------


def entry_identity(entry: Entry, fingerprint: str) -> str:
    """The journal's key for an entry: its ``id`` if it has one, else ``sha256:`` over
    (user_id, mode, media fingerprint). ``fingerprint`` comes from
    :func:`orchestrator.media.media_fingerprint` and is ignored when the entry has an id.

    The caption is deliberately not part of it: fixing a typo must not post the video again.
    Explicit ids cannot contain ':' (schema), so they never collide with derived identities.
    """
    if entry.id is not None:
        return entry.id
    return _derived_identity(entry.user_id, entry.mode, fingerprint)


def content_identity(user_id: str, mode: Mode, fingerprint: str) -> str:
    """The identity an entry without an ``id`` has: ``sha256:`` over (user_id, mode, media
    fingerprint). An entry given an id later adopts the journal record kept under it."""
    return _derived_identity(user_id, mode, fingerprint)


def _derived_identity(user_id: str, mode: Mode, fingerprint: str) -> str:
    material = json.dumps([user_id, str(mode), fingerprint], ensure_ascii=False)
    return "sha256:" + hashlib.sha256(material.encode("utf-8")).hexdigest()


# -- text -----------------------------------------------------------------------------------------


def utf16_units(text: str) -> int:
    """Length as TikTok counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def build_caption(description: str, tags: Sequence[str]) -> str:
    """The description followed by the tags as hashtags, '#' added where missing.

    A tag is left out when the description already has that hashtag or an earlier tag was the
    same (TikTok hashtags are case-insensitive); the first spelling wins.
    """
    seen = {tag.casefold() for tag in _HASHTAG.findall(description)}
    hashtags = []
    for tag in tags:
        name = tag.strip().lstrip("#")
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            hashtags.append(f"#{name}")
    text = description.rstrip()
    return " ".join(([text] if text else []) + hashtags)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-16-le")
    except UnicodeEncodeError:
        return True
    return False


# -- reading the document -------------------------------------------------------------------------


@dataclass
class _Document:
    """A parsed manifest and how to find the line of any of its values."""

    data: Any = None
    failed: bool = False
    problems: list[Problem] = field(default_factory=list)
    line_finder: Callable[[], dict[DocPath, int]] | None = None
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
        text = ""
        for part in path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text or "manifest"

    def problem(self, path: DocPath, message: str, fix: str | None = None) -> Problem:
        return Problem(self.location(path), message, fix, self.line_of(path))


def _read_document(path: Path) -> _Document:
    document = _Document()
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
    as_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() not in (".yaml", ".yml") and text.lstrip()[:1] in ("{", "[")
    )
    return _parse_json(text, document) if as_json else _parse_yaml(text, document)


def _failed(document: _Document, message: str, fix: str | None = None) -> _Document:
    document.problems.append(Problem("manifest", message, fix))
    document.failed = True
    return document


def _decode(raw: bytes, document: _Document) -> str | None:
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


def _parse_json(text: str, document: _Document) -> _Document:
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


def _parse_yaml(text: str, document: _Document) -> _Document:
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
    finder = _parse_yaml_with_lines(text, _Document()).line_finder
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


def _parse_yaml_with_lines(text: str, document: _Document) -> _Document:
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
        document.problems.append(
            Problem(
                "manifest",
                f"invalid YAML: {_yaml_reason(exc)}",
                "check the indentation and quoting there; quote text containing ': ' or "
                "starting with a special character",
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


def _yaml_lines(root: yaml.Node, document: _Document) -> dict[DocPath, int]:
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


# -- the schema -----------------------------------------------------------------------------------


def manifest_schema() -> dict[str, Any]:
    """The shipped JSON Schema (draft 2020-12) of both manifest forms (a fresh copy)."""
    resource = resources.files("orchestrator").joinpath("schemas/manifest.schema.json")
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


@cache
def _inlined_schema() -> dict[str, Any]:
    """The schema with every ``$ref`` replaced by its definition.

    Same meaning (the schema has no recursive references), but jsonschema no longer resolves a
    reference per value: that is what makes 10,000 entries validate in a fraction of a second.
    """
    schema = manifest_schema()
    definitions = schema["$defs"]

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            result = {key: inline(value) for key, value in node.items() if key != "$ref"}
            if "$ref" in node:
                reference = node["$ref"]
                if not reference.startswith("#/$defs/"):
                    raise ValueError(f"unsupported $ref {reference!r} in the manifest schema")
                return {**inline(definitions[reference.removeprefix("#/$defs/")]), **result}
            return result
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {key: inline(value) for key, value in schema.items() if key != "$defs"}


def _validator() -> jsonschema.protocols.Validator:
    """A draft 2020-12 validator that remembers which (subschema, value) pairs passed.

    Entries repeat the same user_id, privacy_level, tags and paths thousands of times; validating
    each distinct pair once is exact (our subschemas depend on nothing but the value) and several
    times faster. So is checking a leaf subschema of only type/pattern/minLength (ids, free
    text) directly: a value that fails is still handed to jsonschema for its error.
    The memo lives as long as this validator: one check.
    """
    passed: set[tuple[int, object]] = set()
    quick_checks: dict[int, Callable[[Any, object], bool] | None] = {}

    def properties(
        validator: Any, properties: dict[str, Any], instance: Any, schema: Any
    ) -> Iterator[jsonschema.ValidationError]:
        if not validator.is_type(instance, "object"):
            return
        for name, value in instance.items():  # the value's own keys: usually few of many
            subschema = properties.get(name)
            if subschema is None:
                continue
            if id(subschema) not in quick_checks:
                quick_checks[id(subschema)] = _quick_check(subschema)
            quick = quick_checks[id(subschema)]
            if quick is not None and quick(validator, value):
                continue
            key = _memo_key(value)
            if key is not None and (id(subschema), key) in passed:
                continue
            errors = list(validator.descend(value, subschema, path=name, schema_path=name))
            if not errors and key is not None:
                passed.add((id(subschema), key))
            yield from errors

    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, {"properties": properties}
    )
    validator: jsonschema.protocols.Validator = cls(_inlined_schema())
    return validator


_ANNOTATIONS = frozenset({"description", "title", "x-fix", "$comment", "examples"})


def _quick_check(subschema: object) -> Callable[[Any, object], bool] | None:
    """A direct test for a leaf subschema asserting only ``type`` (one name), ``pattern`` and
    ``minLength``, with jsonschema's meaning (pattern: ``re.search``; lengths in code points);
    None for anything else."""
    if not isinstance(subschema, dict):
        return None
    assertions = set(subschema) - _ANNOTATIONS
    kind = subschema.get("type")
    if "type" not in assertions or not assertions <= {"type", "pattern", "minLength"}:
        return None
    if not isinstance(kind, str):
        return None
    pattern = re.compile(subschema["pattern"]) if "pattern" in subschema else None
    min_length: int = subschema.get("minLength", 0)

    def check(validator: Any, value: object) -> bool:
        if not validator.is_type(value, kind):
            return False
        if isinstance(value, str):
            if pattern is not None and pattern.search(value) is None:
                return False
            return len(value) >= min_length
        return True

    return check


def _memo_key(value: object) -> object:
    """A hashable stand-in for a scalar or a list of scalars (type included: True != 1)."""
    if value is None or isinstance(value, str | int | float | bool):
        return (type(value), value)
    if isinstance(value, list) and all(
        item is None or isinstance(item, str | int | float | bool) for item in value
    ):
        return (list, tuple((type(item), item) for item in value))
    return None


def _schema_problems(error: jsonschema.ValidationError, document: _Document) -> list[Problem]:
    path: DocPath = tuple(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    fix = schema.get("x-fix")
    instance = error.instance
    kind = error.validator
    expected: Any = error.validator_value
    if kind == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {}))
        problems = []
        for key in instance:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            problems.append(
                document.problem(
                    (*path, key),
                    f"unknown field {key!r}",
                    f"did you mean {close[0]!r}?"
                    if close
                    else "remove it; allowed here: " + ", ".join(allowed),
                )
            )
        return problems
    if kind == "required" and isinstance(instance, dict):
        return [
            document.problem((*path, name), f"{name!r} is missing (required)", fix)
            for name in expected
            if name not in instance
        ]
    if kind == "enum":
        choices = [str(choice) for choice in expected]
        close = difflib.get_close_matches(str(instance).upper(), choices, n=1, cutoff=0.5)
        close = close or difflib.get_close_matches(str(instance).lower(), choices, n=1)
        message = f"{_short(instance)} is not one of {choices}"
        return [document.problem(path, message, f"did you mean {close[0]!r}?" if close else fix)]
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        message = f"expected {_a(wanted)}, got {_json_type(instance)} {_short(instance)}"
        if wanted == "string" and isinstance(instance, bool | int | float):
            # YAML reads 12345, 1e3, no, on... as numbers and booleans unless quoted.
            fix = "put the value in quotes so it is read as text"
        return [document.problem(path, message, fix)]
    if kind == "const":
        message = f"must be {expected!r}, got {_short(instance)}"
        return [document.problem(path, message, fix)]
    if kind == "pattern":
        return [document.problem(path, f"{_short(instance)} is not valid here", fix)]
    if kind == "minItems":
        return [document.problem(path, f"needs at least {expected} item(s)", fix)]
    if kind == "maxItems":
        count = len(instance) if isinstance(instance, list) else "too many"
        message = f"has {count} items; at most {expected} are allowed"
        return [document.problem(path, message, fix)]
    if kind == "minLength":
        return [document.problem(path, "must not be empty", fix)]
    if kind in ("minimum", "maximum"):
        bound = "at least" if kind == "minimum" else "at most"
        message = f"{_short(instance)} is out of range (must be {bound} {expected})"
        return [document.problem(path, message, fix)]
    return [document.problem(path, error.message, fix)]


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _a(noun: str) -> str:
    names = {"object": "a mapping (field: value)", "array": "a list", "integer": "a whole number"}
    if noun in names:
        return names[noun]
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "nothing (null)"
    return type(value).__name__


def _member(kind: type[_E], given: object) -> _E | None:
    try:
        return kind(given) if isinstance(given, str) else None
    except ValueError:
        return None


def _whole_number(given: object) -> int | None:
    # JSON Schema counts 1.0 as an integer; bools are not numbers here.
    if isinstance(given, bool):
        return None
    if isinstance(given, int):
        return given
    if isinstance(given, float) and given.is_integer():
        return int(given)
    return None


# -- semantic checks ------------------------------------------------------------------------------


class _FileChecks:
    """Each distinct file is stat-ed, sniffed and probed once, and fingerprinted at most once,
    however many entries name it."""

    def __init__(self, prober: Prober) -> None:
        self._prober = prober
        self._verdicts: dict[Path, MediaInfo | MediaError] = {}
        self._fingerprints: dict[Path, str | None] = {}

    def verdict(self, path: Path) -> MediaInfo | MediaError:
        found = self._verdicts.get(path)
        if found is None:
            try:
                found = self._prober.probe(path)
            except MediaError as exc:
                found = exc
            self._verdicts[path] = found
        return found

    def fingerprint(self, path: Path) -> str | None:
        if path not in self._fingerprints:
            try:
                self._fingerprints[path] = fingerprint_file(path)
            except MediaError:
                self._fingerprints[path] = None
        return self._fingerprints[path]


@dataclass(frozen=True)
class _Post:
    """What makes an entry a post (SPEC §5), known even when other fields of it are wrong, so
    that duplicates are reported in the same pass as everything else."""

    path: DocPath
    id: str | None
    user_id: str
    mode: Mode
    media: Media
    size: int | None  # of a file source: only equal sizes can be equal content


class _Checker:
    """The semantic pass: normalises each entry and collects every problem."""

    def __init__(
        self,
        *,
        document: _Document,
        base_dir: Path,
        prober: Prober,
        posted: PostedCheck | None = None,
    ) -> None:
        self.document = document
        self.posted = posted
        # Entries whose video file is gone: a problem unless the journal has them posted.
        self._missing: dict[DocPath, tuple[Path, Problem]] = {}
        self.base_dir = base_dir
        self.files = _FileChecks(prober)
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self._resolved: dict[str, Path] = {}
        self._noted_files: set[Path] = set()
        self._inbox_with_post_info: list[str] = []
        self._posts: list[_Post] = []

    def problem(self, path: DocPath, message: str, fix: str | None = None) -> None:
        self.problems.append(self.document.problem(path, message, fix))

    def check(self) -> tuple[Entry, ...] | None:
        data = self.document.data
        defaults: dict[str, Any] = {}
        prefix: DocPath = ()
        if isinstance(data, list):
            raw_entries = data
        elif isinstance(data, dict) and isinstance(data.get("entries"), list):
            raw_entries, prefix = data["entries"], ("entries",)
            if isinstance(data.get("defaults"), dict):
                defaults = data["defaults"]
        else:
            return None  # the schema pass has said what is wrong with the top level
        entries = [
            self._entry(raw, index, (*prefix, index), defaults) if isinstance(raw, dict) else None
            for index, raw in enumerate(raw_entries)
        ]
        self._duplicates()
        if self._inbox_with_post_info:
            shown = ", ".join(self._inbox_with_post_info[:5])
            more = len(self._inbox_with_post_info) - 5
            self.notes.append(
                f"{shown}{f' and {more} more' if more > 0 else ''}: inbox uploads take only the "
                "video; TikTok ignores their caption and post settings (the creator sets them "
                "in the app)"
            )
        valid = tuple(entry for entry in entries if entry is not None)
        return valid if len(valid) == len(entries) else None

    # One entry. Problems go to self.problems; returns the entry only if it is wholly valid.
    def _entry(
        self, raw: dict[str, Any], index: int, path: DocPath, defaults: dict[str, Any]
    ) -> Entry | None:
        before = len(self.problems)
        values = {**BUILT_IN_DEFAULTS, **defaults, **raw}

        def value(name: str, kind: type) -> Any:
            # The schema has already reported a value of the wrong type; skip it here.
            found = values.get(name)
            return found if isinstance(found, kind) else None

        user_id = value("user_id", str)
        if "user_id" not in values and self.document.form is ManifestForm.VERSION_1:
            # (The legacy schema requires user_id itself.)
            self.problem(
                (*path, "user_id"),
                "'user_id' is missing (required)",
                "set user_id on the entry or in `defaults`",
            )
        sources = [name for name in _MEDIA_FIELDS if name in raw]
        if not sources:
            self.problem(
                path,
                "has no media",
                "set exactly one of video_path, video_url or photo_urls",
            )
        elif len(sources) > 1:
            self.problem(
                (*path, sources[1]),
                f"has more than one media source ({' and '.join(sources)})",
                "keep exactly one of video_path, video_url or photo_urls per entry",
            )
        is_photo = sources == ["photo_urls"]
        kind_fields = _VIDEO_ONLY_FIELDS if is_photo else _PHOTO_ONLY_FIELDS
        for name in kind_fields:
            if name in raw and len(sources) == 1:
                self.problem(
                    (*path, name),
                    f"{name!r} applies to {'videos' if is_photo else 'photo posts'} only",
                    "remove it from this entry"
                    + ("; a video's caption is description + tags" if name == "title" else ""),
                )
        media, media_info, size = self._media(raw, path, sources)
        description = value("description", str) or ""
        tags = [tag for tag in (value("tags", list) or []) if isinstance(tag, str)]
        caption = build_caption(description, tags)
        title = value("title", str) if is_photo else None
        self._check_text(path, caption, title, is_photo)
        publish_at = self._publish_at(values.get("publish_at"), path)
        mode = _member(Mode, values.get("mode"))
        privacy = _member(PrivacyLevel, values.get("privacy_level"))
        cover_ms = _whole_number(values.get("video_cover_timestamp_ms"))
        if (
            cover_ms is not None
            and media_info is not None
            and media_info.duration_s is not None
            and cover_ms > media_info.duration_s * 1000
        ):
            self.problem(
                (*path, "video_cover_timestamp_ms"),
                f"{cover_ms} ms is after the end of the video ({media_info.duration_s:.2f} s)",
                "pick a moment within the video",
            )
        # Inbox videos send no post_info, so the rule cannot be broken there.
        sends_post_info = mode is Mode.DIRECT or is_photo
        branded = values.get("brand_content_toggle") is True
        if sends_post_info and branded and privacy is PrivacyLevel.SELF_ONLY:
            self.problem(
                (*path, "brand_content_toggle"),
                "branded content cannot be private (privacy_level is SELF_ONLY)",
                "choose another privacy_level, or turn brand_content_toggle off",
            )
        if mode is Mode.INBOX and not is_photo and any(name in raw for name in _POST_INFO_FIELDS):
            self._inbox_with_post_info.append(self.document.location(path))
        entry_id = value("id", str)
        self._missing_file(path, entry_id, user_id, mode)
        if user_id is not None and mode is not None and media is not None:
            self._posts.append(_Post(path, entry_id, user_id, mode, media, size))
        if len(self.problems) != before or user_id is None or media is None:
            return None
        if mode is None or privacy is None:
            return None
        entry = Entry(
            index=index,
            location=self.document.location(path),
            id=entry_id,
            user_id=user_id,
            mode=mode,
            media=media,
            caption=caption,
            title=title,
            privacy_level=privacy,
            disable_comment=bool(values.get("disable_comment")),
            disable_duet=bool(values.get("disable_duet")) and not is_photo,
            disable_stitch=bool(values.get("disable_stitch")) and not is_photo,
            is_aigc=bool(values.get("is_aigc")),
            brand_content_toggle=bool(values.get("brand_content_toggle")),
            brand_organic_toggle=bool(values.get("brand_organic_toggle")),
            video_cover_timestamp_ms=None if is_photo else cover_ms,
            auto_add_music=bool(values.get("auto_add_music")) and is_photo,
            publish_at=publish_at,
            media_info=media_info,
        )
        return entry

    def _media(
        self, raw: dict[str, Any], path: DocPath, sources: list[str]
    ) -> tuple[Media | None, MediaInfo | None, int | None]:
        """The entry's media source, and for a file its probe and size (None where invalid)."""
        if len(sources) != 1:
            return None, None, None
        source = sources[0]
        given = raw[source]
        if source == "video_url":
            return (VideoUrlMedia(given), None, None) if isinstance(given, str) else (None,) * 3
        if source == "photo_urls":
            if not isinstance(given, list) or not all(isinstance(url, str) for url in given):
                return None, None, None
            cover = raw.get("photo_cover_index", 0)
            if not isinstance(cover, int) or isinstance(cover, bool):
                return None, None, None
            if given and cover >= len(given):
                self.problem(
                    (*path, "photo_cover_index"),
                    f"{cover} is out of range for {_count(len(given), 'photo', 'photos')} "
                    f"(0-based: 0 to {len(given) - 1})",
                    "use a 0-based index into photo_urls",
                )
                return None, None, None
            return PhotoMedia(tuple(given), cover), None, None
        if not isinstance(given, str) or not given:
            return None, None, None
        if "\x00" in given:
            # No file name holds a NUL byte; the operating system would refuse the path.
            self.problem(
                (*path, "video_path"),
                f"{given!r} contains a NUL character, which no file name can",
                "remove the \\x00 from the path",
            )
            return None, None, None
        resolved = self._resolve(given)
        verdict = self.files.verdict(resolved)
        shown = repr(given) if str(resolved) == given else f"{given!r} ({resolved})"
        if isinstance(verdict, MediaError):
            problem = self.document.problem(
                (*path, "video_path"), f"{shown} {verdict.message}", verdict.hint
            )
            if self.posted is not None and not os.path.lexists(resolved):
                # Decided once the entry's id, user and mode are known (_missing_file).
                self._missing[path] = (resolved, problem)
                return FileMedia(resolved), None, None
            self.problems.append(problem)
            return None, None, None
        for violation in verdict.limit_violations():
            self.problem((*path, "video_path"), f"{shown} {violation.message}", violation.fix)
        if verdict.unchecked and resolved not in self._noted_files:
            self._noted_files.add(resolved)
            self.notes.extend(f"{shown}: {note}" for note in verdict.unchecked)
        return FileMedia(resolved), verdict, verdict.size

    def _missing_file(
        self, path: DocPath, entry_id: str | None, user_id: str | None, mode: Mode | None
    ) -> None:
        """A gone video file blocks the manifest, unless the journal holds the entry as posted:
        then it is a note, and the run reports the entry already_done."""
        missing = self._missing.pop(path, None)
        if missing is None:
            return
        resolved, problem = missing
        if (
            self.posted is not None
            and user_id is not None
            and mode is not None
            and self.posted(entry_id, user_id, mode, resolved)
        ):
            self.notes.append(
                f"{problem.location}: {problem.message}, but the journal has this entry "
                "posted: it is reported already_done"
            )
            return
        self.problems.append(problem)

    def _resolve(self, given: str) -> Path:
        found = self._resolved.get(given)
        if found is None:
            candidate = Path(os.path.expanduser(given))
            if not candidate.is_absolute():
                candidate = self.base_dir / candidate
            try:
                found = candidate.resolve()
            except (OSError, RuntimeError):  # a symlink loop: keep the lexical path
                found = Path(os.path.normpath(candidate))
            self._resolved[given] = found
        return found

    def _check_text(self, path: DocPath, caption: str, title: str | None, is_photo: bool) -> None:
        where = (*path, "description")
        if _has_lone_surrogate(caption):
            self.problem(
                where,
                "contains an invalid character (an unpaired UTF-16 surrogate)",
                "remove the broken character (often left by a bad copy-paste of an emoji)",
            )
        limit = PHOTO_DESCRIPTION_MAX_UNITS if is_photo else CAPTION_MAX_UNITS
        units = utf16_units(caption)
        if units > limit:
            what = "description" if is_photo else "caption"
            self.problem(
                where,
                f"the {what} (description + tags) is {units} UTF-16 units; TikTok allows "
                f"{limit} (an emoji counts 2)",
                f"shorten it by {units - limit} or drop some tags",
            )
        if title is not None:
            if _has_lone_surrogate(title):
                self.problem(
                    (*path, "title"),
                    "contains an invalid character (an unpaired UTF-16 surrogate)",
                    "remove the broken character",
                )
            title_units = utf16_units(title)
            if title_units > PHOTO_TITLE_MAX_UNITS:
                self.problem(
                    (*path, "title"),
                    f"is {title_units} UTF-16 units; TikTok allows "
                    f"{PHOTO_TITLE_MAX_UNITS} for a photo title (an emoji counts 2)",
                    f"shorten it by {title_units - PHOTO_TITLE_MAX_UNITS}",
                )

    def _publish_at(self, given: object, path: DocPath) -> datetime | None:
        if not isinstance(given, str):
            return None
        where = (*path, "publish_at")
        try:
            moment = datetime.fromisoformat(given.strip())
        except ValueError:
            self.problem(
                where,
                f"{given!r} is not an ISO 8601 date-time",
                "write it like 2026-11-22T18:00:00Z or 2026-11-22T19:00:00+01:00",
            )
            return None
        if moment.tzinfo is None or moment.utcoffset() is None:
            self.problem(
                where,
                f"{given!r} has no timezone",
                f"add one: {moment.isoformat()}Z for UTC, or an offset like +02:00",
            )
            return None
        return moment.astimezone(UTC)

    # Two entries that would be the same post (SPEC §5): same id, or same user, mode and media.
    def _duplicates(self) -> None:
        first_by_id: dict[str, _Post] = {}
        first_by_identity: dict[str, _Post] = {}
        by_size: dict[tuple[str, Mode, int], list[_Post]] = defaultdict(list)
        for post in self._posts:
            if post.id is not None:
                earlier = first_by_id.setdefault(post.id, post)
                if earlier is not post:
                    self.problem(
                        (*post.path, "id"),
                        f"id {post.id!r} is already used by {self._where(earlier)}",
                        "give each entry its own id",
                    )
            elif isinstance(post.media, FileMedia):
                if post.size is not None:
                    by_size[(post.user_id, post.mode, post.size)].append(post)
            else:
                fingerprint = media_fingerprint(post.media)
                self._same_post(first_by_identity, post, fingerprint)
        # Only files of equal size can have equal fingerprints, so only those are hashed (and a
        # file named twice is fingerprinted once).
        for group in by_size.values():
            if len(group) < 2:
                continue
            for post in group:
                assert isinstance(post.media, FileMedia)
                content = self.files.fingerprint(post.media.path)
                if content is not None:
                    self._same_post(first_by_identity, post, content)

    def _same_post(self, first: dict[str, _Post], post: _Post, fingerprint: str) -> None:
        identity = _derived_identity(post.user_id, post.mode, fingerprint)
        earlier = first.setdefault(identity, post)
        if earlier is post:
            return
        what = {
            FileMedia: "video content",
            VideoUrlMedia: "video URL",
            PhotoMedia: "photo URLs",
        }[type(post.media)]
        self.problem(
            post.path,
            f"is the same post as {self._where(earlier)}: same user, mode and {what}",
            "remove one of them, or give each an `id` if it really should be posted twice",
        )

    def _where(self, post: _Post) -> str:
        line = self.document.line_of(post.path)
        return self.document.location(post.path) + (f" (line {line})" if line else "")
