"""Tiny MP4, MOV and WebM files built in memory, so tests need no ffmpeg.

They carry only the structure the probes read (box and element trees with real headers) plus a
few bytes of stand-in media data: players would not decode them, the probes measure them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# -- ISO base media (MP4 / MOV) -------------------------------------------------------------------


def box(kind: bytes, payload: bytes = b"", *, large: bool = False) -> bytes:
    """A box; ``large`` writes the 64-bit size form (size field 1, then a 64-bit size)."""
    assert len(kind) == 4
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full_box(kind: bytes, version: int, payload: bytes, flags: int = 0) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def ftyp(brand: bytes = b"isom", compatible: tuple[bytes, ...] = (b"isom", b"mp42")) -> bytes:
    return box(b"ftyp", brand + struct.pack(">I", 0x200) + b"".join(compatible))


def mvhd(timescale: int, duration: int, *, version: int = 0) -> bytes:
    if version == 1:
        times = struct.pack(">QQIQ", 0, 0, timescale, duration)
    else:
        times = struct.pack(">IIII", 0, 0, timescale, duration)
    rest = struct.pack(">iH", 0x10000, 0x100) + bytes(10) + _matrix() + bytes(24) + b"\0\0\0\2"
    return full_box(b"mvhd", version, times + rest)


def _matrix(*, rotated: bool = False) -> bytes:
    if rotated:  # 90 degrees: a = d = 0, b = 1, c = -1 (16.16)
        return struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    return struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def tkhd(width: float, height: float, *, version: int = 0, rotated: bool = False) -> bytes:
    if version == 1:
        head = struct.pack(">QQIIQ", 0, 0, 1, 0, 0)
    else:
        head = struct.pack(">IIIII", 0, 0, 1, 0, 0)
    body = head + bytes(8) + struct.pack(">hhhH", 0, 0, 0, 0) + _matrix(rotated=rotated)
    body += struct.pack(">II", int(width * 65536), int(height * 65536))
    return full_box(b"tkhd", version, body, flags=3)


def mdhd(timescale: int, duration: int, *, version: int = 0) -> bytes:
    if version == 1:
        times = struct.pack(">QQIQ", 0, 0, timescale, duration)
    else:
        times = struct.pack(">IIII", 0, 0, timescale, duration)
    return full_box(b"mdhd", version, times + struct.pack(">HH", 0x55C4, 0))


def hdlr(handler: bytes) -> bytes:
    return full_box(b"hdlr", 0, bytes(4) + handler + bytes(12) + b"Handler\0")


def stts(entries: list[tuple[int, int]]) -> bytes:
    payload = struct.pack(">I", len(entries)) + b"".join(
        struct.pack(">II", count, delta) for count, delta in entries
    )
    return full_box(b"stts", 0, payload)


@dataclass(frozen=True)
class Track:
    """One track: a handler (``vide``/``soun``), a picture size and a frame count."""

    handler: bytes | None = b"vide"
    width: float = 720
    height: float = 1280
    timescale: int = 15360
    duration_s: float = 4.0
    frames: int | None = 120
    version: int = 0
    rotated: bool = False
    stts_override: bytes | None = None

    def build(self) -> bytes:
        duration = round(self.duration_s * self.timescale)
        stbl_children = b""
        if self.stts_override is not None:
            stbl_children = self.stts_override
        elif self.frames is not None:
            delta = duration // self.frames if self.frames else 0
            stbl_children = stts([(self.frames, delta)] if self.frames else [])
        minf = box(b"minf", box(b"stbl", stbl_children))
        media = mdhd(self.timescale, duration, version=self.version)
        if self.handler is not None:
            media += hdlr(self.handler)
        return box(
            b"trak",
            tkhd(self.width, self.height, version=self.version, rotated=self.rotated)
            + box(b"mdia", media + minf),
        )


def audio_track(duration_s: float = 4.0) -> Track:
    return Track(handler=b"soun", width=0, height=0, timescale=44100, duration_s=duration_s)


def mp4(
    *,
    brand: bytes = b"isom",
    tracks: tuple[Track, ...] | None = None,
    duration_s: float = 4.0,
    movie_timescale: int = 1000,
    version: int = 0,
    mdat_bytes: int = 2048,
    moov_first: bool = True,
    large_mdat: bool = False,
    mdat_to_end: bool = False,
    with_ftyp: bool = True,
    mvex: bytes | None = None,
) -> bytes:
    """A small MP4 (or MOV with ``brand=b"qt  "``) whose probe gives known values."""
    if tracks is None:
        tracks = (Track(duration_s=duration_s), audio_track(duration_s))
    movie_duration = round(duration_s * movie_timescale)
    moov = box(
        b"moov",
        mvhd(movie_timescale, movie_duration, version=version)
        + b"".join(track.build() for track in tracks)
        + (mvex or b""),
    )
    payload = bytes(range(256)) * (mdat_bytes // 256) + bytes(mdat_bytes % 256)
    if mdat_to_end:
        mdat = struct.pack(">I4s", 0, b"mdat") + payload
    else:
        mdat = box(b"mdat", payload, large=large_mdat)
    head = ftyp(brand, (brand,)) if with_ftyp else b""
    if mdat_to_end:
        return head + moov + mdat
    return head + (moov + mdat if moov_first else mdat + moov)


def mehd(duration: int) -> bytes:
    return full_box(b"mehd", 0, struct.pack(">I", duration))


# -- EBML (WebM / Matroska) -----------------------------------------------------------------------


def _ebml_size(size: int | None) -> bytes:
    if size is None:  # unknown size: all value bits set, 8-byte form
        return b"\x01\xff\xff\xff\xff\xff\xff\xff"
    return bytes([0x08]) + size.to_bytes(4, "big")  # 5-byte form: 0000 1xxx ...


def element(ident: int, payload: bytes = b"", *, unknown_size: bool = False) -> bytes:
    ident_bytes = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    return ident_bytes + _ebml_size(None if unknown_size else len(payload)) + payload


def uint_element(ident: int, value: int) -> bytes:
    return element(ident, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def webm(
    *,
    doc_type: str = "webm",
    width: int = 720,
    height: int = 1280,
    duration_s: float | None = 4.0,
    fps: float | None = 30.0,
    unknown_segment_size: bool = False,
    cluster_bytes: int = 4096,
    tracks: bool = True,
    video: bool = True,
) -> bytes:
    """A small WebM (or another EBML document type) whose probe gives known values."""
    header = element(
        0x1A45DFA3,
        uint_element(0x4286, 1) + element(0x4282, doc_type.encode()) + uint_element(0x4287, 4),
    )
    info = uint_element(0x2AD7B1, 1_000_000)
    if duration_s is not None:
        info += element(0x4489, struct.pack(">d", duration_s * 1000))
    entry = uint_element(0xD7, 1) + uint_element(0x83, 1 if video else 2)
    if fps is not None:
        entry += uint_element(0x23E383, round(1e9 / fps))
    if video:
        entry += element(0xE0, uint_element(0xB0, width) + uint_element(0xBA, height))
    body = element(0x1549A966, info)
    if tracks:
        body += element(0x1654AE6B, element(0xAE, entry))
    body += element(0x1F43B675, bytes(cluster_bytes))
    return header + element(0x18538067, body, unknown_size=unknown_segment_size)
