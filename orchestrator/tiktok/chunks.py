"""The chunk plan of a FILE_UPLOAD (``tiktok-api.md`` §5 and §10), as a pure function.

TikTok states its chunk limits in "MB" without saying whether that means 10^6 or 2^20 bytes, and
real clients have had single 66,259,900-byte chunks refused. Every plan made here is valid under
*both* readings, so each limit below takes the stricter of the two:

- a chunk is at least 5 MiB (5,242,880, the larger of 5 MB and 5 MiB) and at most 64,000,000
  bytes (the smaller of 64 MB and 64 MiB);
- a video goes whole (one chunk, ``chunk_size = video_size``) only when it is at most 64,000,000
  bytes; anything larger is split into at least two chunks;
- ``total_chunk_count = floor(video_size / chunk_size)`` — floor, never ceil: the last chunk
  absorbs the remainder, so it is shorter than two chunks and at most 128,000,000 bytes;
- 1 to 1000 chunks; a video of at most 4,000,000,000 bytes (4 GB under both readings).

This module does no I/O and knows nothing of HTTP beyond the text of a ``Content-Range`` value.
Chunk indexes are 0-based; byte positions are 0-based and ``last`` is inclusive, as in HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from orchestrator.errors import UploadError

MIN_CHUNK = 5_242_880
"""Smallest chunk TikTok accepts under both readings of "5 MB" (5 MiB)."""
MAX_CHUNK = 64_000_000
"""Largest chunk under both readings of "64 MB" (64 x 10^6)."""
MAX_WHOLE = 64_000_000
"""Largest video sent as a single chunk; above it TikTok requires a split."""
MAX_LAST = 128_000_000
"""Largest last chunk (it absorbs the remainder, so it may reach twice a chunk)."""
MAX_CHUNKS = 1000
"""Most chunks one upload may have."""
MAX_VIDEO = 4_000_000_000
"""Largest video the orchestrator plans: "4 GB" read as 4 * 10**9 bytes, the stricter of the two
readings (like "MB" in section 10), so a plan is valid whichever TikTok means."""

DEFAULT_CHUNK = 64_000_000
"""The chunk size we ask for: the largest both "MB" readings allow. Every chunk costs a round
trip with the pipe idle, so bigger is faster (benchmarks/README.md: with 50 ms per chunk answer,
588 MB/s at 64,000,000 vs 92 MB/s at 5 MiB); memory does not depend on it because chunks are
streamed from the file."""


@dataclass(frozen=True)
class Chunk:
    """One chunk of a plan: its 0-based ``index`` and the inclusive byte range it covers."""

    index: int
    first: int
    last: int

    @property
    def length(self) -> int:
        """Bytes in this chunk (the request's Content-Length)."""
        return self.last - self.first + 1

    @property
    def end(self) -> int:
        """The byte position just after this chunk (what the server has once it is accepted)."""
        return self.last + 1


@dataclass(frozen=True)
class ChunkPlan:
    """How a video of ``video_size`` bytes is cut: the three numbers sent in ``source_info``.

    Constructing a plan checks every rule, so a plan read back from the journal is as trustworthy
    as one from :func:`plan_chunks`.
    """

    video_size: int
    chunk_size: int
    total_chunk_count: int

    def __post_init__(self) -> None:
        problem = _plan_problem(self.video_size, self.chunk_size, self.total_chunk_count)
        if problem is not None:
            raise ValueError(
                f"invalid chunk plan (video_size={self.video_size}, chunk_size={self.chunk_size},"
                f" total_chunk_count={self.total_chunk_count}): {problem}"
            )

    @property
    def last_chunk_size(self) -> int:
        """Bytes in the last chunk: the remainder it absorbs included."""
        return self.video_size - (self.total_chunk_count - 1) * self.chunk_size

    def chunk(self, index: int) -> Chunk:
        """The chunk at 0-based ``index``."""
        if not 0 <= index < self.total_chunk_count:
            raise IndexError(f"chunk {index} outside 0..{self.total_chunk_count - 1}")
        first = index * self.chunk_size
        if index == self.total_chunk_count - 1:
            return Chunk(index, first, self.video_size - 1)
        return Chunk(index, first, first + self.chunk_size - 1)

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk, in the order they must be sent."""
        for index in range(self.total_chunk_count):
            yield self.chunk(index)

    def content_range(self, chunk: Chunk) -> str:
        """The ``Content-Range`` header value for ``chunk``: ``bytes FIRST-LAST/TOTAL``."""
        return f"bytes {chunk.first}-{chunk.last}/{self.video_size}"

    def is_boundary(self, offset: int) -> bool:
        """Whether ``offset`` bytes received is a state the server can legitimately be in:
        the start of a chunk, or the whole video."""
        if offset == self.video_size:
            return True
        return 0 <= offset < self.video_size and (
            offset % self.chunk_size == 0 and offset // self.chunk_size < self.total_chunk_count
        )

    def next_chunk(self, received: int) -> Chunk | None:
        """The chunk to send when the server holds ``received`` bytes; ``None`` when it holds
        them all. Raises ``ValueError`` when ``received`` is not a chunk boundary."""
        if not self.is_boundary(received):
            raise ValueError(f"{received} bytes is not a chunk boundary of this plan")
        if received == self.video_size:
            return None
        return self.chunk(received // self.chunk_size)

    def as_source_info(self) -> dict[str, int | str]:
        """The ``source_info`` object of a FILE_UPLOAD init."""
        return {
            "source": "FILE_UPLOAD",
            "video_size": self.video_size,
            "chunk_size": self.chunk_size,
            "total_chunk_count": self.total_chunk_count,
        }


def _plan_problem(video_size: int, chunk_size: int, count: int) -> str | None:
    """What is wrong with a plan, or ``None`` when it follows every rule."""
    if not 1 <= video_size <= MAX_VIDEO:
        return f"video_size must be 1..{MAX_VIDEO}"
    if not 1 <= count <= MAX_CHUNKS:
        return f"total_chunk_count must be 1..{MAX_CHUNKS}"
    if chunk_size < 1 or count != video_size // chunk_size:
        return "total_chunk_count must be floor(video_size / chunk_size)"
    if count == 1:
        if chunk_size != video_size:
            return "a single-chunk upload sends the whole video (chunk_size = video_size)"
        if video_size > MAX_WHOLE:
            return f"a video over {MAX_WHOLE} bytes must be split"
        return None
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        return f"chunk_size must be {MIN_CHUNK}..{MAX_CHUNK}"
    last = video_size - (count - 1) * chunk_size
    if not (last < 2 * chunk_size and last <= MAX_LAST):
        return f"the last chunk ({last} bytes) must be < 2 x chunk_size and ≤ {MAX_LAST}"
    return None


def plan_chunks(video_size: int, preferred_chunk_size: int = DEFAULT_CHUNK) -> ChunkPlan:
    """The chunk plan for a video of ``video_size`` bytes, using chunks of
    ``preferred_chunk_size`` where the rules allow.

    A video shorter than two preferred chunks goes whole when it may (≤ 64,000,000 bytes); a
    longer one that must still be split is cut in two near-equal halves. Raises
    :class:`UploadError` for an empty video or one over ``MAX_VIDEO``, ``ValueError`` for a
    preferred size outside ``MIN_CHUNK..MAX_CHUNK``.
    """
    if not MIN_CHUNK <= preferred_chunk_size <= MAX_CHUNK:
        raise ValueError(
            f"preferred_chunk_size must be {MIN_CHUNK}..{MAX_CHUNK}, got {preferred_chunk_size}"
        )
    if video_size < 1:
        raise UploadError("the video is empty; there is nothing to upload")
    if video_size > MAX_VIDEO:
        raise UploadError(
            f"the video is {video_size} bytes; TikTok accepts at most {MAX_VIDEO} (4 GiB)",
            hint="shorten or re-encode the video",
        )
    if video_size < 2 * preferred_chunk_size and video_size <= MAX_WHOLE:
        return ChunkPlan(video_size, video_size, 1)
    chunk_size = preferred_chunk_size
    if video_size < 2 * chunk_size:
        # Over MAX_WHOLE yet under two chunks: two halves (each > 32,000,000 and ≤ 64,000,000
        # because video_size < 2 x MAX_CHUNK here).
        chunk_size = video_size // 2
    if video_size // chunk_size > MAX_CHUNKS:
        # Unreachable with MIN_CHUNK and MAX_VIDEO as they are (4 GiB / 5 MiB = 819 chunks),
        # kept so the plan stays right if either limit moves.
        chunk_size = -(-video_size // MAX_CHUNKS)
    return ChunkPlan(video_size, chunk_size, video_size // chunk_size)
