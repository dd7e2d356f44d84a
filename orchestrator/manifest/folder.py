"""``manifest new``: a manifest from a folder of videos, with captions from sidecar files and,
if asked, ``publish_at`` spread over days.

Each file under the folder is sniffed by its bytes (as ``validate`` does; its name does not
matter) and each video becomes one entry for the given user:

- ``id``: derived from the path relative to the folder (``day 1/intro.mp4`` →
  ``day-1-intro.mp4``), so it is the same on every run and the journal keeps recognising it;
- sidecars beside the video with the same stem: ``clip.txt`` is the description;
  ``clip.yaml``/``clip.yml``/``clip.json`` hold any entry fields (checked against the schema,
  each problem named by the sidecar's path), and win over the text file;
- with a :class:`Schedule`, ``publish_at`` slots ``start`` + k * ``every`` at ``at`` in ``tz``
  (a day step keeps the wall-clock time across a DST change), at most ``per_day`` posts per
  creator on a local day.

Run again with the same output, it keeps every entry the manifest has (ids and fields, edits
included) and adds only the videos it does not name yet, scheduled after the ones it has.

What this module must not do: read more of a video than its sniffing head, or overwrite
anything but the manifest it was asked to write.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.errors import ManifestError, MediaError, UsageError
from orchestrator.manifest.convert import (
    dump_manifest,
    entries_of,
    manifest_format,
    read_manifest_data,
    write_manifest,
)
from orchestrator.manifest.documents import Document, read_document
from orchestrator.manifest.model import DocPath, Problem, count_of
from orchestrator.manifest.schema import manifest_validator, schema_problems
from orchestrator.media.sniff import SNIFF_BYTES, sniff_container

SIDECAR_FIELDS_SUFFIXES = (".yaml", ".yml", ".json")
MEDIA_FIELDS = ("video_path", "video_url", "photo_urls")
"""Fields a sidecar may not set: the video beside it is the entry's media."""
MAX_ID_LENGTH = 128  # the schema's id pattern
_NOT_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Schedule:
    """Where ``publish_at`` slots fall: ``start`` + k * ``every`` at ``at``, in ``tz``."""

    start: date
    every: timedelta
    at: time
    tz: tzinfo
    per_day: int = 1

    def __post_init__(self) -> None:
        if self.every <= timedelta(0):
            raise ValueError("every must be positive")
        if self.per_day < 1:
            raise ValueError("per_day must be at least 1")

    def slots(self) -> Iterator[datetime]:
        """Every slot from the start, in order (without end)."""
        first = datetime.combine(self.start, self.at, tzinfo=self.tz)
        whole_days = self.every % timedelta(days=1) == timedelta(0)
        step = 0
        while True:
            if whole_days:  # wall-clock time kept across a DST change
                yield datetime.combine(
                    self.start + self.every * step, self.at, tzinfo=self.tz
                ).replace(fold=0)
            else:  # an hour step is an interval of real time
                yield (first.astimezone(ZoneInfo("UTC")) + self.every * step).astimezone(self.tz)
            step += 1


@dataclass(frozen=True)
class FolderManifest:
    """What ``manifest new`` wrote: how many entries it kept and added."""

    path: Path
    kept: int
    added: int
    skipped: tuple[str, ...]
    """Files that are not videos (by their bytes), relative to the folder."""


def parse_every(text: str) -> timedelta:
    """``1d``, ``2d``, ``12h``, ``1w``: the step between slots."""
    found = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text, flags=re.IGNORECASE)
    if found is None or int(found.group(1)) == 0:
        raise UsageError(
            f"--every {text!r} is not a step", hint="write a number and h, d or w: 1d, 12h, 1w"
        )
    unit = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
    return unit[found.group(2).lower()] * int(found.group(1))


def local_timezone() -> tzinfo:
    """The machine's timezone with its DST rules (/etc/localtime), else today's offset."""
    # /etc/localtime is usually a link into the zoneinfo tree: its tail is the IANA name.
    target = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in target:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
    try:
        with open("/etc/localtime", "rb") as file:
            return ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError):
        return datetime.now().astimezone().tzinfo or ZoneInfo("UTC")


def timezone_named(name: str | None) -> tzinfo:
    """The IANA timezone ``name`` (``--tz``), or this machine's for None."""
    if name is None:
        return local_timezone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--tz {name!r} is not a known timezone",
            hint="use an IANA name such as Europe/Berlin, America/New_York or UTC",
        ) from None


def derived_id(relative: Path) -> str:
    """A stable entry id from a video's path relative to the folder."""
    text = _NOT_ID.sub("-", relative.as_posix().replace("/", "-")).strip("-._")
    if not text or len(text) > MAX_ID_LENGTH:
        digest = hashlib.sha256(relative.as_posix().encode("utf-8")).hexdigest()[:12]
        text = f"{text[: MAX_ID_LENGTH - 13].rstrip('-._')}-{digest}".lstrip("-")
    return text


def new_manifest(
    folder: Path,
    output: Path,
    *,
    user_id: str,
    mode: str | None = None,
    schedule: Schedule | None = None,
) -> FolderManifest:
    """Write (or extend) the manifest ``output`` with the videos under ``folder``.

    Raises UsageError (no such folder), ManifestError (a sidecar, or the existing output, has
    problems; nothing is written), FileWriteError.
    """
    kind = manifest_format(output)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder", hint="give the folder holding the videos")
    # The manifest as it is (defaults, edits and all); its entries as the run sees them.
    kept: dict[str, Any] = {"version": 1, "entries": []}
    if output.exists():
        found = read_manifest_data(output)
        kept = {"version": 1, "entries": found} if isinstance(found, list) else dict(found)
    existing = entries_of(kept)
    base = output.parent
    named = {_resolved(base, e["video_path"]) for e in existing if "video_path" in e}
    ids = {e["id"] for e in existing if "id" in e}
    videos, skipped = _videos(folder, output)
    problems: list[Problem] = []
    added: list[dict[str, Any]] = []
    for relative in videos:
        path = folder / relative
        if os.path.abspath(path) in named:
            continue
        entry: dict[str, Any] = {"id": derived_id(relative), "user_id": user_id}
        if mode is not None:
            entry["mode"] = mode
        entry["video_path"] = Path(os.path.relpath(path, base)).as_posix()
        entry.update(_sidecar_fields(path, folder, problems))
        if entry["id"] in ids:
            problems.append(
                Problem(
                    relative.as_posix(),
                    f"its id {entry['id']!r} is already used in {output.name}",
                    "give it another `id` in a sidecar file",
                )
            )
        ids.add(entry["id"])
        added.append(entry)
    if problems:
        raise ManifestError(
            f"{folder}: {count_of(len(problems), 'problem', 'problems')} found; "
            f"{output} was not written",
            [str(problem) for problem in problems],
        )
    if schedule is not None:
        _schedule(added, existing, schedule)
    data = {**kept, "entries": [*kept["entries"], *added]}
    write_manifest(output, dump_manifest(data, kind), force=True)
    return FolderManifest(output, len(existing), len(added), tuple(skipped))


def _resolved(base: Path, video_path: str) -> str:
    return os.path.abspath(os.path.join(base, os.path.expanduser(video_path)))


def _videos(folder: Path, output: Path) -> tuple[list[Path], list[str]]:
    """The videos under ``folder`` (by their bytes), relative, in path order; and the rest."""
    videos: list[Path] = []
    skipped: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            relative = path.relative_to(folder)
            if name.startswith(".") or path.suffix.lower() in (".txt", *SIDECAR_FIELDS_SUFFIXES):
                continue  # hidden files, sidecars and manifests
            if path.suffix.lower() == ".csv" or path == output:
                continue
            try:
                with open(path, "rb") as file:
                    sniff_container(file.read(SNIFF_BYTES))
            except (MediaError, OSError):
                skipped.append(relative.as_posix())
                continue
            videos.append(relative)
    return videos, skipped


def _sidecar_fields(video: Path, folder: Path, problems: list[Problem]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    text_file = video.with_suffix(".txt")
    if text_file.is_file():
        try:
            fields["description"] = text_file.read_text(encoding="utf-8-sig").strip()
        except (OSError, UnicodeDecodeError) as exc:
            where = text_file.relative_to(folder).as_posix()
            problems.append(Problem(where, f"cannot be read ({exc})", "save it as UTF-8 text"))
    for suffix in SIDECAR_FIELDS_SUFFIXES:
        sidecar = video.with_suffix(suffix)
        if sidecar.is_file():
            fields.update(_fields_file(sidecar, sidecar.relative_to(folder).as_posix(), problems))
    if not fields.get("description"):
        fields.pop("description", None)
    return fields


def _fields_file(path: Path, where: str, problems: list[Problem]) -> dict[str, Any]:
    """A sidecar's entry fields, each problem placed as ``clip.yaml: field``."""
    document = read_document(path)
    if document.failed or document.problems:
        problems.extend(
            Problem(where, problem.message, problem.fix, problem.line, problem.column)
            for problem in document.problems
        )
        return {}
    data = document.data
    if not isinstance(data, dict):
        problems.append(Problem(where, "is not a mapping of entry fields", "write field: value"))
        return {}
    for name in MEDIA_FIELDS:
        if name in data:
            problems.append(
                Problem(f"{where}: {name}", "cannot be set here: the video beside it is the media")
            )
    fields = {key: value for key, value in data.items() if key not in MEDIA_FIELDS}
    probe: dict[str, Any] = {
        "version": 1,
        "entries": [{"video_path": "x", "user_id": "x", **fields}],
    }

    def locate(doc_path: DocPath) -> str:
        return f"{where}: {doc_path[2]}" if len(doc_path) > 2 else where

    checked = Document(data=probe, locator=locate)
    for error in manifest_validator().iter_errors(probe):
        problems.extend(schema_problems(error, checked))
    return fields


def _schedule(added: list[dict[str, Any]], existing: list[dict[str, Any]], plan: Schedule) -> None:
    """Give each new entry without ``publish_at`` the first slot with room for its creator,
    after the creator's latest scheduled entry."""
    per_day: Counter[tuple[str, date]] = Counter()
    latest: dict[str, datetime] = {}
    for entry in [*existing, *added]:
        when = _moment(entry.get("publish_at"))
        if when is None:
            continue
        user = str(entry.get("user_id"))
        local = when.astimezone(plan.tz)
        per_day[(user, local.date())] += 1
        latest[user] = max(latest.get(user, local), local)
    for entry in added:
        if "publish_at" in entry:
            continue
        user = str(entry["user_id"])
        for slot in plan.slots():
            if user in latest and slot < latest[user]:
                continue
            if per_day[(user, slot.date())] < plan.per_day:
                break
        per_day[(user, slot.date())] += 1
        latest[user] = slot
        entry["publish_at"] = slot.isoformat()


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo is not None else None
