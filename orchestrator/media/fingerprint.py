"""Fingerprints: the media part of an entry's identity (SPEC §5).

What this module must not do: read a whole file (a fingerprint reads at most 2 MiB).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from orchestrator.media.model import FileMedia, Media, VideoUrlMedia
from orchestrator.media.regular_file import open_regular

FINGERPRINT_EDGE_BYTES = 1024 * 1024


def fingerprint_file(path: Path) -> str:
    """``file:SIZE:SHA256`` over the first and the last MiB (a file up to 2 MiB is hashed whole).

    Never a full read: identity must be cheap on the hot path, and size plus both ends tells
    re-encoded or re-cut videos apart in practice. Raises MediaError if the file cannot be read.
    """
    with open_regular(path) as file:
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
