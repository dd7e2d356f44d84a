"""The MP4/MOV reader: duration, picture size and frame rate from the ISO base media box tree.

It seeks from box to box and reads only the small boxes it needs (``mvhd``, ``tkhd``, ``mdhd``,
``hdlr``, ``stts``), within the budgets of :class:`~orchestrator.media.reading.BoundedReader`.

What this module must not do: read media data, or read past its budget.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from orchestrator.errors import MediaError
from orchestrator.media.model import Measurement
from orchestrator.media.reading import (
    STRUCTURE_READ_BUDGET,
    BoundedReader,
    cut_short,
    measure_within_budget,
)

MAX_STTS_BYTES = 1024 * 1024


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


def _boxes(reader: BoundedReader, start: int, end: int, *, top_level: bool) -> Iterator[_Box]:
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
                raise cut_short(f"{_name(kind)} box", pos, pos + 16, reader.size)
            (size,) = struct.unpack(">Q", reader.read_at(pos + 8, 8))
            header = 16
        elif size == 0:  # the box runs to the end of its container
            size = end - pos
        if size < header:
            raise MediaError(f"is damaged: its {_name(kind)} box at byte {pos} has size {size}")
        if pos + size > end:
            if top_level:
                raise cut_short(f"{_name(kind)} box", pos, pos + size, reader.size)
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
    return measure_within_budget(_read_mp4, file, size, budget)


def _read_mp4(reader: BoundedReader) -> Measurement:
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


def _time_header(reader: BoundedReader, box: _Box) -> tuple[int, int | None]:
    """(timescale, duration) of an mvhd or mdhd box, versions 0 and 1."""
    data = reader.read_at(box.payload, min(box.size - box.header, 32))
    if len(data) >= 20 and data[0] == 0:
        timescale, duration = struct.unpack(">II", data[12:20])
        return timescale, duration
    if len(data) >= 32 and data[0] == 1:
        timescale, duration = struct.unpack(">IQ", data[20:32])
        return timescale, duration
    return 0, None


def _mehd(reader: BoundedReader, box: _Box) -> int | None:
    data = reader.read_at(box.payload, min(box.size - box.header, 12))
    if len(data) >= 8 and data[0] == 0:
        return int(struct.unpack(">I", data[4:8])[0])
    if len(data) >= 12 and data[0] == 1:
        return int(struct.unpack(">Q", data[4:12])[0])
    return None


def _read_track(reader: BoundedReader, trak: _Box) -> _Track:
    track = _Track()
    for box in _boxes(reader, trak.payload, trak.end, top_level=False):
        if box.kind == b"tkhd":
            track = _tkhd(reader, box, track)
        elif box.kind == b"mdia":
            track = _mdia(reader, box, track)
    return track


def _tkhd(reader: BoundedReader, box: _Box, track: _Track) -> _Track:
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


def _mdia(reader: BoundedReader, mdia: _Box, track: _Track) -> _Track:
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


def _stts(reader: BoundedReader, box: _Box, track: _Track) -> _Track:
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
