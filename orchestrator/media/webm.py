"""The WebM reader: duration, picture size and frame rate from the EBML element tree (the
Segment's ``Info`` and ``Tracks``), and the EBML document type sniffing asks for.

What this module must not do: read clusters (the media data), or read past its budget.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from orchestrator.errors import MediaError
from orchestrator.media.model import Measurement
from orchestrator.media.reading import (
    STRUCTURE_READ_BUDGET,
    BoundedReader,
    OverBudget,
    cut_short,
    measure_within_budget,
)

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


def ebml_doc_type(head: bytes) -> str | None:
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
    return measure_within_budget(_read_webm, file, size, budget)


_EBML_NAMES = {
    _EBML_ID: "EBML header",
    _SEGMENT_ID: "Segment",
    _INFO_ID: "Info element",
    _TRACKS_ID: "Tracks element",
    _CLUSTER_ID: "Cluster",
}


def _element_at(reader: BoundedReader, pos: int, limit: int) -> _Element:
    reader.count_box()
    element = _element_in(reader.read_at(pos, min(12, limit - pos)), 0, offset=pos)
    if element.data > limit or (element.end is not None and element.end > limit):
        end = element.end if element.end is not None else element.data
        what = _EBML_NAMES.get(element.ident, f"element {element.ident:#x}")
        raise cut_short(what, pos, end, reader.size)
    return element


def _read_webm(reader: BoundedReader) -> Measurement:
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
                raise OverBudget
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
