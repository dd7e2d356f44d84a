"""Sniffing: a file's container from its first bytes (never from its name), or a MediaError
saying what the file looks like instead.

What this module must not do: read more than the head it is given.
"""

from __future__ import annotations

import struct

from orchestrator.errors import MediaError
from orchestrator.media.model import ContentType
from orchestrator.media.webm import ebml_doc_type

SNIFF_BYTES = 4096
_CONVERT_HINT = (
    "TikTok accepts MP4 (recommended), MOV and WebM; convert it, "
    "e.g. `ffmpeg -i INPUT -c:v libx264 -c:a aac OUTPUT.mp4`"
)

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
        doc_type = ebml_doc_type(head)
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
