"""What a media source is: a video file's container (by its bytes), its duration, size and frame
rate, TikTok's media limits, and the fingerprints that make up an entry's identity (SPEC §5).

Probing uses built-in readers for MP4/MOV (the ISO base media box tree) and WebM (the EBML
element tree), and ``ffprobe`` when it is installed for whatever they could not measure. The
built-in readers seek from box to box and read only the small boxes they need (``mvhd``, ``tkhd``,
``mdhd``, ``hdlr``, ``stts``; WebM ``Info`` and ``Tracks``), with a hard budget on bytes read and
boxes visited, so a 4 GB file costs a few kilobytes and a hostile one cannot make them loop.

What this module must not do: read a whole file (sniffing reads 4 KiB, a fingerprint at most
2 MiB), open anything that is not a regular file (a FIFO would block the run, a device could be
endless), or touch the network. It knows nothing about manifests.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import stat
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from orchestrator.errors import MediaError
from orchestrator.tiktok.chunks import MAX_VIDEO

# tiktok-api.md §5: "Video ≤ 4 GB", read as 4 * 10**9 bytes, the stricter reading, as §10 does
# for "MB": the planner (tiktok/chunks.py) and validation share one limit.
MAX_VIDEO_BYTES = MAX_VIDEO
# tiktok-api.md §5 media limits. The duration limit here is the API maximum; each creator's own
# maximum (creator_info.max_video_post_duration_sec) is compared later, with the token at hand.
MIN_FRAME_RATE = 23.0
MAX_FRAME_RATE = 60.0
MIN_SIDE_PX = 360
MAX_SIDE_PX = 4096
MAX_DURATION_S = 600.0

SNIFF_BYTES = 4096
FINGERPRINT_EDGE_BYTES = 1024 * 1024
# Bounds for the built-in readers: a real moov needs a few KB of these; more means a broken or
# hostile file, and we stop with what we have rather than keep reading.
STRUCTURE_READ_BUDGET = 4 * 1024 * 1024
MAX_BOXES = 100_000
MAX_STTS_BYTES = 1024 * 1024
FFPROBE_TIMEOUT_S = 30.0

_FFMPEG_HINT = "install ffmpeg (which provides ffprobe) to check it"
_CONVERT_HINT = (
    "TikTok accepts MP4 (recommended), MOV and WebM; convert it, "
    "e.g. `ffmpeg -i INPUT -c:v libx264 -c:a aac OUTPUT.mp4`"
)


class ContentType(StrEnum):
    """The containers TikTok accepts, as the Content-Type sent with each chunk."""

    MP4 = "video/mp4"
    QUICKTIME = "video/quicktime"
    WEBM = "video/webm"


# -- media sources (an entry's media is exactly one of these) -------------------------------------


@dataclass(frozen=True)
class FileMedia:
    """A local video file, sent with FILE_UPLOAD. ``path`` is absolute and resolved."""

    path: Path


@dataclass(frozen=True)
class VideoUrlMedia:
    """A video TikTok pulls from an https URL on a verified domain (PULL_FROM_URL)."""

    url: str


@dataclass(frozen=True)
class PhotoMedia:
    """A photo post: 1-35 https image URLs TikTok pulls, and the 0-based cover index."""

    urls: tuple[str, ...]
    cover_index: int = 0


Media = FileMedia | VideoUrlMedia | PhotoMedia


# -- fingerprints (SPEC §5) -----------------------------------------------------------------------


def fingerprint_file(path: Path) -> str:
    """``file:SIZE:SHA256`` over the first and the last MiB (a file up to 2 MiB is hashed whole).

    Never a full read: identity must be cheap on the hot path, and size plus both ends tells
    re-encoded or re-cut videos apart in practice. Raises MediaError if the file cannot be read.
    """
    with _open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        digest = hashlib.sha256()
        digest.update(file.read(FINGERPRINT_EDGE_BYTES))
        if size > FINGERPRINT_EDGE_BYTES:
            file.seek(max(FINGERPRINT_EDGE_BYTES, size - FINGERPRINT_EDGE_BYTES))
            digest.update(file.read(FINGERPRINT_EDGE_BYTES))
    return f"file:{size}:{digest.hexdigest()}"


def media_fingerprint(media: Media) -> str:
    """The media part of an entry's identity: a file's content fingerprint, a URL, a URL list.

    A photo post's cover index is not part of it: choosing another cover is not another post.
    """
    if isinstance(media, FileMedia):
        return fingerprint_file(media.path)
    if isinstance(media, VideoUrlMedia):
        return f"url:{media.url}"
    return "photos:" + json.dumps(list(media.urls), separators=(",", ":"))


# -- probe results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """What a reader measured; ``None`` where it could not, with the reason in ``gaps``."""

    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    gaps: tuple[tuple[str, str], ...] = ()

    def missing(self) -> tuple[str, ...]:
        """Names of the quantities still unknown: duration, size, frame rate."""
        names = []
        if self.duration_s is None:
            names.append("duration")
        if self.width is None or self.height is None:
            names.append("size")
        if self.frame_rate is None:
            names.append("frame rate")
        return tuple(names)

    def reason(self, what: str) -> str | None:
        return next((why for name, why in self.gaps if name == what), None)

    def filled_from(self, other: Measurement) -> Measurement:
        """This measurement with its unknowns taken from ``other`` (ours win where both know)."""
        has_size = self.width is not None and self.height is not None
        return Measurement(
            duration_s=self.duration_s if self.duration_s is not None else other.duration_s,
            width=self.width if has_size else other.width,
            height=self.height if has_size else other.height,
            frame_rate=self.frame_rate if self.frame_rate is not None else other.frame_rate,
            gaps=other.gaps + self.gaps,
        )


@dataclass(frozen=True)
class LimitViolation:
    """A measured value outside TikTok's media limits, with the fix."""

    message: str
    fix: str


@dataclass(frozen=True)
class MediaInfo:
    """A video file as probed: container, size in bytes, and what could be measured.

    ``unchecked`` holds one sentence per limit that could not be checked and why; those are
    notes for the user, not errors (TikTok itself will judge the file).
    """

    content_type: ContentType
    size: int
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    probed_with: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()

    def limit_violations(self) -> tuple[LimitViolation, ...]:
        """Every known value outside TikTok's limits (tiktok-api.md §5)."""
        found = []
        if self.duration_s is not None and self.duration_s > MAX_DURATION_S:
            found.append(
                LimitViolation(
                    f"lasts {self.duration_s:.1f} s; the API accepts at most "
                    f"{MAX_DURATION_S:.0f} s (10 min)",
                    "trim it to 10 minutes or less",
                )
            )
        if self.frame_rate is not None and not (
            MIN_FRAME_RATE <= round(self.frame_rate, 2) <= MAX_FRAME_RATE
        ):
            found.append(
                LimitViolation(
                    f"runs at {self.frame_rate:.3g} fps; TikTok accepts "
                    f"{MIN_FRAME_RATE:.0f} to {MAX_FRAME_RATE:.0f} fps",
                    "re-encode it at 24, 25, 30 or 60 fps (e.g. `ffmpeg -i IN -r 30 OUT.mp4`)",
                )
            )
        if self.width is not None and self.height is not None:
            sides = (self.width, self.height)
            if not all(MIN_SIDE_PX <= side <= MAX_SIDE_PX for side in sides):
                found.append(
                    LimitViolation(
                        f"is {self.width}x{self.height} px; TikTok accepts "
                        f"{MIN_SIDE_PX} to {MAX_SIDE_PX} px on each side",
                        "scale it, e.g. to 720x1280 or 1080x1920",
                    )
                )
        return tuple(found)


@dataclass(frozen=True)
class Prober:
    """How video files are probed: the ``ffprobe`` executable (``None``: built-in readers only)
    and how long one ffprobe run may take."""

    ffprobe: str | None = None
    timeout_s: float = FFPROBE_TIMEOUT_S

    @classmethod
    def detect(cls) -> Prober:
        """Use ffprobe when it is on PATH."""
        return cls(ffprobe=shutil.which("ffprobe"))

    def probe(self, path: Path) -> MediaInfo:
        return probe_video(path, ffprobe=self.ffprobe, timeout_s=self.timeout_s)


# -- the file itself ------------------------------------------------------------------------------


def check_regular_file(path: Path) -> os.stat_result:
    """``os.stat`` the path and insist on a non-empty regular file of at most 4 GB.

    Uses stat, never open, to decide: opening a FIFO for reading blocks until a writer appears.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise MediaError(
            "file not found",
            hint="check the path; a relative path is resolved against the manifest's folder",
        ) from None
    except NotADirectoryError:
        raise MediaError(
            "file not found (a part of the path is a file, not a folder)",
            hint="check the path; a relative path is resolved against the manifest's folder",
        ) from None
    except PermissionError:
        raise MediaError(
            "cannot be reached (permission denied on a folder in the path)",
            hint="give the user running the orchestrator access to the folder",
        ) from None
    except OSError as exc:
        raise MediaError(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise MediaError(
            "is a folder, not a video file", hint="point it at the video file inside the folder"
        )
    if stat.S_ISFIFO(mode):
        raise MediaError(
            "is a named pipe (FIFO), not a regular file",
            hint="write the video to a regular file first: uploads need its size up front",
        )
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise MediaError("is a device, not a regular file", hint="point it at a video file")
    if stat.S_ISSOCK(mode):
        raise MediaError("is a socket, not a regular file", hint="point it at a video file")
    if not stat.S_ISREG(mode):
        raise MediaError("is not a regular file", hint="point it at a video file")
    if info.st_size == 0:
        raise MediaError("is empty (0 bytes)", hint="export or copy the video again")
    if info.st_size > MAX_VIDEO_BYTES:
        raise MediaError(
            f"is {info.st_size:,} bytes; TikTok accepts at most {MAX_VIDEO_BYTES:,} (4 GB)",
            hint="shorten it or encode it at a lower bitrate",
        )
    return info


def _open_regular(path: Path) -> BinaryIO:
    """Open for reading without ever blocking on a FIFO, and re-check the type on the open file
    (the path could have been swapped between stat and open)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except PermissionError:
        raise MediaError(
            "cannot be read (permission denied)",
            hint="make it readable by the user running the orchestrator",
        ) from None
    except FileNotFoundError:
        raise MediaError("file not found") from None
    except OSError as exc:
        raise MediaError(f"cannot be opened ({exc.strerror or type(exc).__name__})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise MediaError("is not a regular file", hint="point it at a video file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def probe_video(
    path: Path, *, ffprobe: str | None = None, timeout_s: float = FFPROBE_TIMEOUT_S
) -> MediaInfo:
    """Check that ``path`` is a video TikTok can take and measure it.

    Raises MediaError when it cannot be posted at all (not a regular file, empty, over 4 GB, not
    MP4/MOV/WebM by its bytes, cut short, no video track). Limits are not judged here: see
    :meth:`MediaInfo.limit_violations`.
    """
    size = check_regular_file(path).st_size
    try:
        with _open_regular(path) as file:
            content_type = sniff_container(file.read(SNIFF_BYTES))
            if content_type is ContentType.WEBM:
                measured, reader = read_webm(file, size), "built-in WebM reader"
            else:
                measured, reader = read_mp4(file, size), "built-in MP4 reader"
    except OSError as exc:
        raise MediaError(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    probed_with = [reader]
    if ffprobe is not None and measured.missing():
        measured = measured.filled_from(run_ffprobe(path, ffprobe, timeout_s=timeout_s))
        probed_with.append("ffprobe")
    notes = []
    for what in measured.missing():
        why = measured.reason(what) or "the file does not state it"
        notes.append(f"{what} not checked: {why}" + ("" if ffprobe else f"; {_FFMPEG_HINT}"))
    return MediaInfo(
        content_type=content_type,
        size=size,
        duration_s=measured.duration_s,
        width=measured.width,
        height=measured.height,
        frame_rate=measured.frame_rate,
        probed_with=tuple(probed_with),
        unchecked=tuple(notes),
    )


# -- sniffing -------------------------------------------------------------------------------------

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
# Major brands of ISO-BMFF files that are not videos TikTok takes.
_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
# Old QuickTime files have no ftyp and open with one of these atoms.
_QUICKTIME_FIRST_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


def sniff_container(head: bytes) -> ContentType:
    """The container of a file from its first bytes, or MediaError saying what it looks like."""
    if len(head) >= 8 and head[4:8] == b"ftyp":
        if len(head) < 12:
            raise MediaError(
                "is cut short: it ends inside its first box",
                hint="the copy or export did not finish; copy or export the video again",
            )
        brand = head[8:12]
        if brand == b"qt  ":
            return ContentType.QUICKTIME
        if brand in _IMAGE_BRANDS:
            raise MediaError("is a HEIF/AVIF image, not a video", hint=_CONVERT_HINT)
        if brand in _AUDIO_BRANDS:
            raise MediaError("is an audio file (M4A), not a video", hint=_CONVERT_HINT)
        return ContentType.MP4
    if len(head) >= 8 and head[4:8] in _QUICKTIME_FIRST_ATOMS:
        (box_size,) = struct.unpack(">I", head[:4])
        if box_size in (0, 1) or box_size >= 8:
            return ContentType.QUICKTIME
    if head.startswith(_EBML_MAGIC):
        doc_type = _ebml_doc_type(head)
        if doc_type == "webm":
            return ContentType.WEBM
        if doc_type == "matroska":
            raise MediaError(
                "is a Matroska (.mkv) file; TikTok accepts MP4, MOV and WebM",
                hint="remux it without re-encoding: `ffmpeg -i INPUT.mkv -c copy OUTPUT.mp4`",
            )
        raise MediaError(
            f"is an EBML file of type {doc_type or 'unknown'!r}, not WebM", hint=_CONVERT_HINT
        )
    raise MediaError(
        f"is not an MP4, MOV or WebM video by its content ({_looks_like(head)})",
        hint=_CONVERT_HINT,
    )


def _looks_like(head: bytes) -> str:
    signatures = (
        (b"\xff\xd8\xff", "it looks like a JPEG image"),
        (b"\x89PNG\r\n\x1a\n", "it looks like a PNG image"),
        (b"GIF8", "it looks like a GIF image"),
        (b"FLV", "it looks like a Flash video (FLV)"),
        (b"OggS", "it looks like an Ogg file"),
        (b"ID3", "it looks like an MP3 file"),
        (b"%PDF", "it looks like a PDF document"),
        (b"PK\x03\x04", "it looks like a ZIP archive"),
        (b"\x00\x00\x01\xba", "it looks like an MPEG program stream"),
        (b"\x1f\x8b", "it looks like a gzip archive"),
    )
    for magic, what in signatures:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "it looks like an AVI video"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "it looks like a WebP image"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "it looks like an MPEG transport stream"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Reading a fixed number of bytes may split the last character: forgive only that.
        text = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else ""
    if text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return "it looks like text; only its name says video"
    return "its first bytes match no video format"


# -- bounded reading ------------------------------------------------------------------------------


class _OverBudget(Exception):
    """The file needs more reading than the budget allows; stop with what we have."""


class _BoundedReader:
    """Positional reads from a file, counting bytes and boxes against fixed budgets."""

    def __init__(self, file: BinaryIO, size: int, *, budget: int = STRUCTURE_READ_BUDGET) -> None:
        self.file = file
        self.size = size
        self.budget = budget
        self.spent = 0
        self.boxes = 0

    def read_at(self, offset: int, count: int) -> bytes:
        count = max(0, min(count, self.size - offset))
        if self.spent + count > self.budget:
            raise _OverBudget
        self.file.seek(offset)
        data = self.file.read(count)
        self.spent += len(data)
        if len(data) < count:
            # The file shrank under us, or its stat size lied.
            raise MediaError("is cut short: it ends before its stated size")
        return data

    def count_box(self) -> None:
        self.boxes += 1
        if self.boxes > MAX_BOXES:
            raise _OverBudget


def _cut_short(what: str, offset: int, end: int, file_size: int) -> MediaError:
    return MediaError(
        f"is cut short: its {what} at byte {offset} runs to byte {end}, "
        f"but the file ends at byte {file_size}",
        hint="the copy or export did not finish; copy or export the video again",
    )


# -- MP4 / MOV ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Box:
    kind: bytes
    start: int
    header: int
    size: int

    @property
    def payload(self) -> int:
        return self.start + self.header

    @property
    def end(self) -> int:
        return self.start + self.size


def _boxes(reader: _BoundedReader, start: int, end: int, *, top_level: bool) -> Iterator[_Box]:
    """The boxes laid end to end in [start, end), found by seeking from header to header."""
    pos = start
    while pos < end:
        if end - pos < 8:
            if top_level:
                return  # a few padding bytes after the last box: players ignore them
            raise MediaError(f"is damaged: {end - pos} stray bytes at byte {pos}")
        reader.count_box()
        size, kind = struct.unpack(">I4s", reader.read_at(pos, 8))
        header = 8
        if size == 1:  # 64-bit size follows the type
            if end - pos < 16:
                raise _cut_short(f"{_name(kind)} box", pos, pos + 16, reader.size)
            (size,) = struct.unpack(">Q", reader.read_at(pos + 8, 8))
            header = 16
        elif size == 0:  # the box runs to the end of its container
            size = end - pos
        if size < header:
            raise MediaError(f"is damaged: its {_name(kind)} box at byte {pos} has size {size}")
        if pos + size > end:
            if top_level:
                raise _cut_short(f"{_name(kind)} box", pos, pos + size, reader.size)
            raise MediaError(
                f"is damaged: its {_name(kind)} box at byte {pos} overruns its container"
            )
        yield _Box(kind, pos, header, size)
        pos += size


def _name(kind: bytes) -> str:
    text = kind.decode("latin-1")
    return repr(text) if text.isprintable() else kind.hex()


@dataclass(frozen=True)
class _Track:
    handler: bytes | None = None
    width: float = 0.0
    height: float = 0.0
    rotated: bool = False
    timescale: int = 0
    duration: int = 0
    samples: int | None = None
    samples_gap: str | None = None


def read_mp4(file: BinaryIO, size: int, *, budget: int = STRUCTURE_READ_BUDGET) -> Measurement:
    """Duration, size and frame rate of an MP4/MOV file from its box tree.

    Raises MediaError when the file is cut short (a box runs past the end, no ``moov``), damaged,
    or has no video track. Reads at most ``budget`` bytes; beyond it, returns what it has.
    """
    reader = _BoundedReader(file, size, budget=budget)
    try:
        return _read_mp4(reader)
    except struct.error:
        raise MediaError("is damaged: a header field is cut short") from None
    except _OverBudget:
        return Measurement(
            gaps=tuple(
                (what, "the file's structure is too large to inspect cheaply")
                for what in ("duration", "size", "frame rate")
            )
        )


def _read_mp4(reader: _BoundedReader) -> Measurement:
    moov: _Box | None = None
    saw_media_data = False
    for box in _boxes(reader, 0, reader.size, top_level=True):
        if box.kind == b"moov" and moov is None:
            moov = box
        elif box.kind in (b"mdat", b"moof"):
            saw_media_data = True
    if moov is None:
        raise MediaError(
            "is cut short or unfinished: it has no 'moov' box (the index a player needs)"
            + (" although it has media data" if saw_media_data else ""),
            hint="the recording or export did not finish; export the video again",
        )
    movie_timescale = 0
    movie_duration: int | None = None
    fragment_duration: int | None = None
    tracks: list[_Track] = []
    for box in _boxes(reader, moov.payload, moov.end, top_level=False):
        if box.kind == b"mvhd":
            movie_timescale, movie_duration = _time_header(reader, box)
        elif box.kind == b"trak":
            tracks.append(_read_track(reader, box))
        elif box.kind == b"mvex":
            for child in _boxes(reader, box.payload, box.end, top_level=False):
                if child.kind == b"mehd":
                    fragment_duration = _mehd(reader, child)
    video = _video_track(tracks)
    if video is None:
        raise MediaError(
            "has no video track (an audio-only file?)", hint="post a file with a video track"
        )
    gaps: list[tuple[str, str]] = []
    duration = _seconds(movie_duration, movie_timescale)
    if duration is None:
        duration = _seconds(fragment_duration, movie_timescale)
    if duration is None:
        duration = _seconds(video.duration, video.timescale)
    if duration is None:
        gaps.append(("duration", "the file is fragmented and does not state its duration"))
    frame_rate = None
    track_seconds = _seconds(video.duration, video.timescale)
    if video.samples and track_seconds:
        frame_rate = video.samples / track_seconds
    else:
        gaps.append(
            ("frame rate", video.samples_gap or "the file is fragmented (frames are in fragments)")
        )
    width, height = round(video.width), round(video.height)
    if video.rotated:
        width, height = height, width
    if not (width and height):
        gaps.append(("size", "the video track does not state its size"))
        return Measurement(duration, None, None, frame_rate, tuple(gaps))
    return Measurement(duration, width, height, frame_rate, tuple(gaps))


def _seconds(duration: int | None, timescale: int) -> float | None:
    # An all-ones duration means "unknown" (ISO/IEC 14496-12); zero means fragmented/unknown.
    if not duration or timescale <= 0 or duration in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        return None
    return duration / timescale


def _time_header(reader: _BoundedReader, box: _Box) -> tuple[int, int | None]:
    """(timescale, duration) of an mvhd or mdhd box, versions 0 and 1."""
    data = reader.read_at(box.payload, min(box.size - box.header, 32))
    if len(data) >= 20 and data[0] == 0:
        timescale, duration = struct.unpack(">II", data[12:20])
        return timescale, duration
    if len(data) >= 32 and data[0] == 1:
        timescale, duration = struct.unpack(">IQ", data[20:32])
        return timescale, duration
    return 0, None


def _mehd(reader: _BoundedReader, box: _Box) -> int | None:
    data = reader.read_at(box.payload, min(box.size - box.header, 12))
    if len(data) >= 8 and data[0] == 0:
        return int(struct.unpack(">I", data[4:8])[0])
    if len(data) >= 12 and data[0] == 1:
        return int(struct.unpack(">Q", data[4:12])[0])
    return None


def _read_track(reader: _BoundedReader, trak: _Box) -> _Track:
    track = _Track()
    for box in _boxes(reader, trak.payload, trak.end, top_level=False):
        if box.kind == b"tkhd":
            track = _tkhd(reader, box, track)
        elif box.kind == b"mdia":
            track = _mdia(reader, box, track)
    return track


def _tkhd(reader: _BoundedReader, box: _Box, track: _Track) -> _Track:
    data = reader.read_at(box.payload, min(box.size - box.header, 96))
    # Layout after version/flags: times, track id, duration (32- or 64-bit by version), then
    # 16 reserved/layer/volume bytes, the 3x3 matrix, width and height as 16.16 fixed point.
    matrix_at = {0: 40, 1: 52}.get(data[0] if data else -1)
    if matrix_at is None or len(data) < matrix_at + 44:
        return track
    a, b, _u, c, d = struct.unpack(">iiiii", data[matrix_at : matrix_at + 20])
    width, height = struct.unpack(">II", data[matrix_at + 36 : matrix_at + 44])
    # A 90 or 270 degree rotation (phones record landscape sensors as portrait): a = d = 0.
    rotated = a == 0 and d == 0 and b != 0 and c != 0
    return replace(track, width=width / 65536, height=height / 65536, rotated=rotated)


def _mdia(reader: _BoundedReader, mdia: _Box, track: _Track) -> _Track:
    for box in _boxes(reader, mdia.payload, mdia.end, top_level=False):
        if box.kind == b"mdhd":
            timescale, duration = _time_header(reader, box)
            track = replace(track, timescale=timescale, duration=duration or 0)
        elif box.kind == b"hdlr":
            data = reader.read_at(box.payload, min(box.size - box.header, 12))
            if len(data) >= 12:
                track = replace(track, handler=data[8:12])
        elif box.kind == b"minf":
            for stbl in _boxes(reader, box.payload, box.end, top_level=False):
                if stbl.kind != b"stbl":
                    continue
                for child in _boxes(reader, stbl.payload, stbl.end, top_level=False):
                    if child.kind == b"stts":
                        track = _stts(reader, child, track)
    return track


def _stts(reader: _BoundedReader, box: _Box, track: _Track) -> _Track:
    """Count the samples (frames) from the time-to-sample table, if it is cheap to read."""
    head = reader.read_at(box.payload, min(box.size - box.header, 8))
    if len(head) < 8:
        return replace(track, samples_gap="the sample table is damaged")
    (entries,) = struct.unpack(">I", head[4:8])
    table_bytes = entries * 8
    if table_bytes > box.size - box.header - 8:
        return replace(track, samples_gap="the sample table is damaged")
    if table_bytes > MAX_STTS_BYTES:
        return replace(track, samples_gap="the sample table is too large to read cheaply")
    table = reader.read_at(box.payload + 8, table_bytes)
    samples = sum(count for count, _delta in struct.iter_unpack(">II", table))
    return replace(track, samples=samples)


def _video_track(tracks: list[_Track]) -> _Track | None:
    for track in tracks:
        if track.handler == b"vide":
            return track
    # No handler box: take the first track with a picture size (audio tracks have none).
    for track in tracks:
        if track.handler is None and track.width > 0 and track.height > 0:
            return track
    return None


# -- WebM -----------------------------------------------------------------------------------------

_EBML_ID = 0x1A45DFA3
_DOC_TYPE_ID = 0x4282
_SEGMENT_ID = 0x18538067
_INFO_ID = 0x1549A966
_TRACKS_ID = 0x1654AE6B
_CLUSTER_ID = 0x1F43B675
_TIMESTAMP_SCALE_ID = 0x2AD7B1
_DURATION_ID = 0x4489
_TRACK_ENTRY_ID = 0xAE
_TRACK_TYPE_ID = 0x83
_DEFAULT_DURATION_ID = 0x23E383
_VIDEO_ID = 0xE0
_PIXEL_WIDTH_ID = 0xB0
_PIXEL_HEIGHT_ID = 0xBA
_MAX_WEBM_HEADER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class _Element:
    ident: int
    start: int
    data: int  # where the payload starts
    end: int | None  # None: unknown size (live streams)


def _vint(data: bytes, pos: int, *, marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer at ``pos``: (value, length, all value bits set)."""
    if pos >= len(data):
        raise MediaError("is cut short inside a WebM element header")
    first = data[pos]
    if first == 0:
        raise MediaError(f"is damaged: invalid WebM element header at byte {pos}")
    length = 9 - first.bit_length()
    if pos + length > len(data):
        raise MediaError("is cut short inside a WebM element header")
    value = first if marker else first & (0xFF >> length)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    all_ones = not marker and value == (1 << (7 * length)) - 1
    return value, length, all_ones


def _element_in(data: bytes, pos: int, offset: int = 0) -> _Element:
    """The element header at ``pos`` of an in-memory buffer (``offset`` = its file position)."""
    ident, id_len, _ = _vint(data, pos, marker=True)
    if id_len > 4:
        raise MediaError(f"is damaged: invalid WebM element id at byte {offset + pos}")
    size, size_len, unknown = _vint(data, pos + id_len, marker=False)
    start = offset + pos
    payload = start + id_len + size_len
    return _Element(ident, start, payload, None if unknown else payload + size)


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(id, payload) of the elements in ``data[start:end]`` (an in-memory master element)."""
    pos = start
    while pos < end:
        element = _element_in(data, pos)
        if element.end is None or element.end > end:
            return  # a damaged header element: ignore the rest, the limits stay unchecked
        yield element.ident, data[element.data : element.end]
        pos = element.end


def _uint(payload: bytes) -> int:
    return int.from_bytes(payload[:8], "big")


def _ebml_doc_type(head: bytes) -> str | None:
    try:
        header = _element_in(head, 0)
        end = len(head) if header.end is None else min(header.end, len(head))
        for ident, payload in _children(head, header.data, end):
            if ident == _DOC_TYPE_ID:
                return payload.decode("ascii", errors="replace").rstrip("\x00")
    except MediaError:
        return None
    return None


def read_webm(file: BinaryIO, size: int, *, budget: int = STRUCTURE_READ_BUDGET) -> Measurement:
    """Duration, size and frame rate of a WebM file from its Info and Tracks elements.

    Walks the Segment's top-level elements by their sizes (so a cut-short file is noticed) until
    it meets one of unknown size. Raises MediaError when the file is cut short or damaged.
    """
    reader = _BoundedReader(file, size, budget=budget)
    try:
        return _read_webm(reader)
    except struct.error:
        raise MediaError("is damaged: a header field is cut short") from None
    except _OverBudget:
        return Measurement(
            gaps=tuple(
                (what, "the file's structure is too large to inspect cheaply")
                for what in ("duration", "size", "frame rate")
            )
        )


_EBML_NAMES = {
    _EBML_ID: "EBML header",
    _SEGMENT_ID: "Segment",
    _INFO_ID: "Info element",
    _TRACKS_ID: "Tracks element",
    _CLUSTER_ID: "Cluster",
}


def _element_at(reader: _BoundedReader, pos: int, limit: int) -> _Element:
    reader.count_box()
    element = _element_in(reader.read_at(pos, min(12, limit - pos)), 0, offset=pos)
    if element.data > limit or (element.end is not None and element.end > limit):
        end = element.end if element.end is not None else element.data
        what = _EBML_NAMES.get(element.ident, f"element {element.ident:#x}")
        raise _cut_short(what, pos, end, reader.size)
    return element


def _read_webm(reader: _BoundedReader) -> Measurement:
    header = _element_at(reader, 0, reader.size)
    if header.end is None:
        raise MediaError("is damaged: its WebM header has no size")
    pos = header.end
    segment: _Element | None = None
    while pos < reader.size:
        element = _element_at(reader, pos, reader.size)
        if element.ident == _SEGMENT_ID:
            segment = element
            break
        if element.end is None:
            break
        pos = element.end
    if segment is None:
        raise MediaError(
            "is cut short: it has a WebM header but no Segment",
            hint="the recording or export did not finish; export the video again",
        )
    info: bytes | None = None
    tracks: bytes | None = None
    clusters = 0
    pos = segment.data
    segment_end = reader.size if segment.end is None else segment.end
    while pos < segment_end:
        element = _element_at(reader, pos, segment_end)
        if element.ident in (_INFO_ID, _TRACKS_ID) and element.end is not None:
            if element.end - element.data > _MAX_WEBM_HEADER_BYTES:
                raise _OverBudget
            payload = reader.read_at(element.data, element.end - element.data)
            if element.ident == _INFO_ID:
                info = payload
            else:
                tracks = payload
        elif element.ident == _CLUSTER_ID:
            clusters += 1
        if element.end is None:
            break  # a live-recorded cluster of unknown size: nothing after it can be located
        pos = element.end
    if tracks is None:
        raise MediaError(
            "is cut short or damaged: it has no WebM Tracks element",
            hint="export the video again",
        )
    return _webm_measurement(info, tracks)


def _webm_measurement(info: bytes | None, tracks: bytes) -> Measurement:
    gaps: list[tuple[str, str]] = []
    duration = None
    if info is not None:
        scale_ns = 1_000_000
        raw_duration: float | None = None
        for ident, payload in _children(info, 0, len(info)):
            if ident == _TIMESTAMP_SCALE_ID and payload:
                scale_ns = _uint(payload) or scale_ns
            elif ident == _DURATION_ID and len(payload) in (4, 8):
                raw_duration = struct.unpack(">f" if len(payload) == 4 else ">d", payload)[0]
        if raw_duration is not None and math.isfinite(raw_duration) and raw_duration > 0:
            duration = raw_duration * scale_ns / 1e9
    if duration is None:
        gaps.append(("duration", "the WebM file does not state its duration (a live recording?)"))
    for ident, entry in _children(tracks, 0, len(tracks)):
        if ident != _TRACK_ENTRY_ID:
            continue
        fields = dict(_children(entry, 0, len(entry)))
        if _uint(fields.get(_TRACK_TYPE_ID, b"")) != 1:  # 1 = video
            continue
        picture = dict(_children(fields.get(_VIDEO_ID, b""), 0, len(fields.get(_VIDEO_ID, b""))))
        width = _uint(picture.get(_PIXEL_WIDTH_ID, b"")) or None
        height = _uint(picture.get(_PIXEL_HEIGHT_ID, b"")) or None
        if width is None or height is None:
            gaps.append(("size", "the video track does not state its size"))
            width = height = None
        frame_ns = _uint(fields.get(_DEFAULT_DURATION_ID, b""))
        frame_rate = 1e9 / frame_ns if frame_ns else None
        if frame_rate is None:
            gaps.append(("frame rate", "the WebM file does not state a frame duration"))
        return Measurement(duration, width, height, frame_rate, tuple(gaps))
    raise MediaError(
        "has no video track (an audio-only file?)", hint="post a file with a video track"
    )


# -- ffprobe --------------------------------------------------------------------------------------


def run_ffprobe(
    path: Path, executable: str, *, timeout_s: float = FFPROBE_TIMEOUT_S
) -> Measurement:
    """Measure the first video stream with ffprobe (JSON output, bounded in time).

    Raises MediaError when ffprobe reads the file and finds it broken or without video; a
    missing or hanging ffprobe only leaves the values unknown.
    """
    command = [
        executable,
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        "-select_streams",
        "v:0",
        # "file:" keeps ffprobe from reading a protocol or option out of an odd file name.
        f"file:{path}",
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return _ffprobe_gap(f"ffprobe did not answer within {timeout_s:g} s")
    except OSError as exc:
        return _ffprobe_gap(f"ffprobe could not be run ({exc.strerror or type(exc).__name__})")
    stderr = done.stderr.decode("utf-8", errors="replace").strip()
    if done.returncode != 0:
        reason = stderr.splitlines()[-1] if stderr else f"exit status {done.returncode}"
        raise MediaError(
            f"cannot be read by ffprobe: {reason.removeprefix(f'file:{path}: ')}",
            hint="the file is damaged or not a video; export it again",
        )
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        return _ffprobe_gap("ffprobe gave an answer that is not JSON")
    return _parse_ffprobe(answer)


def _ffprobe_gap(why: str) -> Measurement:
    return Measurement(gaps=tuple((what, why) for what in ("duration", "size", "frame rate")))


def _parse_ffprobe(answer: object) -> Measurement:
    if not isinstance(answer, dict):
        return _ffprobe_gap("ffprobe gave an unexpected answer")
    streams = answer.get("streams")
    stream = streams[0] if isinstance(streams, list) and streams else None
    if not isinstance(stream, dict) or stream.get("codec_type", "video") != "video":
        raise MediaError(
            "has no video stream (ffprobe found none)", hint="post a file with a video track"
        )
    file_format = answer.get("format")
    duration = _positive_float(stream.get("duration"))
    if duration is None and isinstance(file_format, dict):
        duration = _positive_float(file_format.get("duration"))
    width = _positive_int(stream.get("width"))
    height = _positive_int(stream.get("height"))
    if width is not None and height is not None and _ffprobe_rotation(stream) % 180 == 90:
        width, height = height, width
    frame_rate = _ratio(stream.get("avg_frame_rate")) or _ratio(stream.get("r_frame_rate"))
    gaps = []
    if duration is None:
        gaps.append(("duration", "ffprobe could not tell the duration"))
    if width is None or height is None:
        gaps.append(("size", "ffprobe could not tell the picture size"))
        width = height = None
    if frame_rate is None:
        gaps.append(("frame rate", "ffprobe could not tell the frame rate"))
    return Measurement(duration, width, height, frame_rate, tuple(gaps))


def _ffprobe_rotation(stream: dict[str, object]) -> int:
    side_data = stream.get("side_data_list")
    if isinstance(side_data, list):
        for item in side_data:
            if isinstance(item, dict) and "rotation" in item:
                return abs(_int_or_zero(item["rotation"]))
    tags = stream.get("tags")
    if isinstance(tags, dict) and "rotate" in tags:
        return abs(_int_or_zero(tags["rotate"]))
    return 0


def _int_or_zero(value: object) -> int:
    try:
        return int(float(str(value)))
    except ValueError:
        return 0


def _positive_float(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _ratio(value: object) -> float | None:
    if not isinstance(value, str) or "/" not in value:
        return None
    numerator, _, denominator = value.partition("/")
    try:
        top, bottom = int(numerator), int(denominator)
    except ValueError:
        return None
    return top / bottom if top > 0 and bottom > 0 else None
