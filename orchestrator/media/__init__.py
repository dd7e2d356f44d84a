"""What a media source is: a video file's container (by its bytes), its duration, size and frame
rate, TikTok's media limits, and the fingerprints that make up an entry's identity (SPEC §5).

Probing (:mod:`.probe`) checks the file is regular (:mod:`.regular_file`), sniffs its container
(:mod:`.sniff`) and measures it with the built-in reader for MP4/MOV (:mod:`.isobmff`, the ISO
base media box tree) or WebM (:mod:`.webm`, the EBML element tree), and with ``ffprobe``
(:mod:`.ffprobe`) when it is installed for whatever they could not measure. The built-in readers
seek from box to box and read only the small boxes they need (``mvhd``, ``tkhd``, ``mdhd``,
``hdlr``, ``stts``; WebM ``Info`` and ``Tracks``), with a hard budget on bytes read and boxes
visited (:mod:`.reading`), so a 4 GB file costs a few kilobytes and a hostile one cannot make
them loop. :mod:`.fingerprint` makes the media part of an entry's identity; :mod:`.model` holds
the values all of them share.

What this package must not do: read a whole file (sniffing reads 4 KiB, a fingerprint at most
2 MiB), open anything that is not a regular file (a FIFO would block the run, a device could be
endless), or touch the network. It knows nothing about manifests.
"""

from orchestrator.media.ffprobe import FFPROBE_TIMEOUT_S, run_ffprobe
from orchestrator.media.fingerprint import (
    FINGERPRINT_EDGE_BYTES,
    fingerprint_file,
    media_fingerprint,
)
from orchestrator.media.isobmff import MAX_STTS_BYTES, read_mp4
from orchestrator.media.model import (
    MAX_DURATION_S,
    MAX_FRAME_RATE,
    MAX_SIDE_PX,
    MAX_VIDEO_BYTES,
    MIN_FRAME_RATE,
    MIN_SIDE_PX,
    ContentType,
    FileMedia,
    LimitViolation,
    Measurement,
    Media,
    MediaInfo,
    PhotoMedia,
    VideoUrlMedia,
)
from orchestrator.media.probe import Prober, probe_video
from orchestrator.media.reading import MAX_BOXES, STRUCTURE_READ_BUDGET
from orchestrator.media.regular_file import check_regular_file
from orchestrator.media.sniff import SNIFF_BYTES, sniff_container
from orchestrator.media.webm import read_webm

__all__ = [
    "FFPROBE_TIMEOUT_S",
    "FINGERPRINT_EDGE_BYTES",
    "MAX_BOXES",
    "MAX_DURATION_S",
    "MAX_FRAME_RATE",
    "MAX_SIDE_PX",
    "MAX_STTS_BYTES",
    "MAX_VIDEO_BYTES",
    "MIN_FRAME_RATE",
    "MIN_SIDE_PX",
    "SNIFF_BYTES",
    "STRUCTURE_READ_BUDGET",
    "ContentType",
    "FileMedia",
    "LimitViolation",
    "Measurement",
    "Media",
    "MediaInfo",
    "PhotoMedia",
    "Prober",
    "VideoUrlMedia",
    "check_regular_file",
    "fingerprint_file",
    "media_fingerprint",
    "probe_video",
    "read_mp4",
    "read_webm",
    "run_ffprobe",
    "sniff_container",
]
