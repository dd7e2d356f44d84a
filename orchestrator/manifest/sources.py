"""The checks of an entry's media source: exactly which one is given, and for a file, that it
exists and is a video TikTok takes (probed once per distinct file, fingerprinted at most once).

A file that is gone is a problem unless the journal holds the entry as posted (``posted``);
then it is a note, and the run reports the entry already_done.

What this module must not do: measure or fingerprint a video itself (it asks the Prober and
orchestrator.media), or report anything but through the ``problems`` and ``notes`` it shares
with the :class:`~orchestrator.manifest.checks.Checker`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.errors import MediaError
from orchestrator.manifest.documents import Document
from orchestrator.manifest.model import DocPath, Mode, Problem, count_of
from orchestrator.media import (
    FileMedia,
    Media,
    MediaInfo,
    PhotoMedia,
    Prober,
    VideoUrlMedia,
    fingerprint_file,
)

PostedCheck = Callable[[str | None, str, Mode, Path], bool]
"""(entry id, user_id, mode, video path) → whether the journal holds that entry as posted."""


class FileChecks:
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


class SourceChecks:
    """An entry's media source checked and resolved; problems and notes go to the lists the
    checker passes in."""

    def __init__(
        self,
        *,
        document: Document,
        base_dir: Path,
        prober: Prober,
        posted: PostedCheck | None,
        problems: list[Problem],
        notes: list[str],
    ) -> None:
        self.document = document
        self.base_dir = base_dir
        self.posted = posted
        self.files = FileChecks(prober)
        self.problems = problems
        self.notes = notes
        # Entries whose video file is gone: a problem unless the journal has them posted.
        self._missing: dict[DocPath, tuple[Path, Problem]] = {}
        self._resolved: dict[str, Path] = {}
        self._noted_files: set[Path] = set()
        # video_path as written → its media and probe, for a file with nothing to report.
        self._good_files: dict[str, tuple[FileMedia, MediaInfo]] = {}

    def problem(self, path: DocPath, message: str, fix: str | None = None) -> None:
        self.problems.append(self.document.problem(path, message, fix))

    def media(
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
                    f"{cover} is out of range for {count_of(len(given), 'photo', 'photos')} "
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
        known = self._good_files.get(given)
        if known is not None:  # a good file many entries name: checked once, for the first
            media, info = known
            return media, info, info.size
        resolved = self._resolve(given)
        verdict = self.files.verdict(resolved)
        shown = repr(given) if str(resolved) == given else f"{given!r} ({resolved})"
        if isinstance(verdict, MediaError):
            problem = self.document.problem(
                (*path, "video_path"), f"{shown} {verdict.message}", verdict.hint
            )
            if self.posted is not None and not os.path.lexists(resolved):
                # Decided once the entry's id, user and mode are known (missing_file).
                self._missing[path] = (resolved, problem)
                return FileMedia(resolved), None, None
            self.problems.append(problem)
            return None, None, None
        violations = verdict.limit_violations()
        for violation in violations:
            self.problem((*path, "video_path"), f"{shown} {violation.message}", violation.fix)
        if verdict.unchecked and resolved not in self._noted_files:
            self._noted_files.add(resolved)
            self.notes.extend(f"{shown}: {note}" for note in verdict.unchecked)
        if not violations:
            self._good_files[given] = (FileMedia(resolved), verdict)
        return FileMedia(resolved), verdict, verdict.size

    def missing_file(
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
