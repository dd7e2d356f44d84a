"""The chunk plan follows tiktok-api.md §5 under both readings of "MB" (§10)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from orchestrator.errors import UploadError
from orchestrator.tiktok.chunks import (
    DEFAULT_CHUNK,
    MAX_CHUNK,
    MAX_VIDEO,
    MIN_CHUNK,
    Chunk,
    ChunkPlan,
    plan_chunks,
)

MB_READINGS = (1_000_000, 1_048_576)

# Sizes where the rules change, and their neighbours: hypothesis tries these first.
_EDGES = [
    1,
    MIN_CHUNK - 1,
    MIN_CHUNK,
    2 * MIN_CHUNK - 1,
    2 * MIN_CHUNK,
    64_000_000,
    64_000_001,
    67_108_864,
    128_000_000,
    128_000_001,
    3 * 64_000_000 - 1,
    MAX_VIDEO - 1,
    MAX_VIDEO,
]
video_sizes = st.one_of(
    st.sampled_from(_EDGES),
    st.integers(min_value=1, max_value=MAX_VIDEO),
    st.integers(min_value=1, max_value=200_000_000),
)
chunk_preferences = st.one_of(
    st.sampled_from([MIN_CHUNK, 10_000_000, 16 * 1024 * 1024, DEFAULT_CHUNK, MAX_CHUNK]),
    st.integers(min_value=MIN_CHUNK, max_value=MAX_CHUNK),
)


def assert_valid_under(plan: ChunkPlan, mb: int) -> None:
    """Check a plan against §5 with "MB" meaning ``mb`` bytes (independent of chunks.py)."""
    size, chunk, count = plan.video_size, plan.chunk_size, plan.total_chunk_count
    assert count == size // chunk, "floor count"
    assert 1 <= count <= 1000
    if count == 1:
        assert chunk == size, "a single chunk is the whole video"
        assert size <= 64 * mb, "only a video of at most 64 MB goes whole"
        return
    assert 5 * mb <= chunk <= 64 * mb, "chunk size bounds"
    last = size - (count - 1) * chunk
    assert last < 2 * chunk
    assert last <= 128 * mb


@given(size=video_sizes, preferred=chunk_preferences)
@example(size=66_259_900, preferred=MAX_CHUNK)  # a single chunk real TikTok refused
def test_every_plan_is_valid_under_both_mb_readings(size: int, preferred: int) -> None:
    """Any size from 1 byte to 4 GiB gets a plan valid whether MB means 10^6 or 2^20 bytes."""
    plan = plan_chunks(size, preferred)
    for mb in MB_READINGS:
        assert_valid_under(plan, mb)
    if size > 64_000_000:
        assert plan.total_chunk_count >= 2


@given(size=video_sizes, preferred=chunk_preferences)
def test_chunks_cover_the_video_exactly_once_in_order(size: int, preferred: int) -> None:
    """The chunks are contiguous, start at 0, end at the last byte, and match the plan's sizes."""
    plan = plan_chunks(size, preferred)
    chunks = list(plan.chunks())
    assert len(chunks) == plan.total_chunk_count
    assert chunks[0].first == 0
    assert chunks[-1].last == size - 1
    for before, after in itertools.pairwise(chunks):
        assert after.first == before.last + 1
    assert all(c.length == plan.chunk_size for c in chunks[:-1])
    assert chunks[-1].length == plan.last_chunk_size
    assert sum(c.length for c in chunks) == size


@given(size=video_sizes, preferred=chunk_preferences)
def test_preferred_size_is_used_when_the_rules_allow(size: int, preferred: int) -> None:
    """A video of at least two preferred chunks is cut at exactly the preferred size."""
    plan = plan_chunks(size, preferred)
    if size >= 2 * preferred:
        assert plan.chunk_size == preferred
    elif size <= 64_000_000:
        assert plan.total_chunk_count == 1


def test_doc_example_fifty_million_bytes_in_ten_million_byte_chunks() -> None:
    """50,000,123 bytes with 10,000,000-byte chunks: 5 chunks, the last absorbs the 123."""
    plan = plan_chunks(50_000_123, preferred_chunk_size=10_000_000)
    assert (plan.video_size, plan.chunk_size, plan.total_chunk_count) == (
        50_000_123,
        10_000_000,
        5,
    )
    chunks = list(plan.chunks())
    assert [c.length for c in chunks] == [10_000_000] * 4 + [10_000_123]
    assert plan.content_range(chunks[0]) == "bytes 0-9999999/50000123"
    assert plan.content_range(chunks[-1]) == "bytes 40000000-50000122/50000123"
    assert plan.as_source_info() == {
        "source": "FILE_UPLOAD",
        "video_size": 50_000_123,
        "chunk_size": 10_000_000,
        "total_chunk_count": 5,
    }


def test_small_video_goes_whole() -> None:
    """A 1 MB video is one chunk of its own size (TikTok: under 5 MB goes whole)."""
    plan = plan_chunks(1_000_000)
    assert (plan.chunk_size, plan.total_chunk_count) == (1_000_000, 1)
    assert plan.content_range(plan.chunk(0)) == "bytes 0-999999/1000000"


def test_video_just_over_the_whole_limit_is_split_in_two() -> None:
    """66,259,900 bytes (refused whole by real TikTok) goes as two chunks."""
    plan = plan_chunks(66_259_900, preferred_chunk_size=MAX_CHUNK)
    assert plan.total_chunk_count == 2
    assert plan.chunk_size == 33_129_950


def test_four_gib_video_is_planned_within_a_thousand_chunks() -> None:
    """The largest video gets a plan with the default chunk size."""
    plan = plan_chunks(MAX_VIDEO)
    assert plan.chunk_size == DEFAULT_CHUNK
    assert plan.total_chunk_count == MAX_VIDEO // DEFAULT_CHUNK


@pytest.mark.parametrize("size", [0, -1, MAX_VIDEO + 1])
def test_empty_or_oversized_video_is_refused_with_a_message(size: int) -> None:
    """A video of no bytes or over 4 GiB cannot be planned, and the error says so."""
    with pytest.raises(UploadError, match=r"empty|4 GiB"):
        plan_chunks(size)


@pytest.mark.parametrize("preferred", [MIN_CHUNK - 1, MAX_CHUNK + 1])
def test_preferred_size_outside_the_limits_is_a_programming_error(preferred: int) -> None:
    """A preferred chunk size TikTok would refuse is rejected before any plan is made."""
    with pytest.raises(ValueError, match="preferred_chunk_size"):
        plan_chunks(100_000_000, preferred)


@pytest.mark.parametrize(
    ("size", "chunk", "count", "problem"),
    [
        (100_000_000, 10_000_000, 11, "floor"),  # ceil count
        (66_259_900, 66_259_900, 1, "must be split"),
        (20_000_000, 4_000_000, 5, "chunk_size"),
        (10_000_000, 5_242_880, 1, "whole video"),
        (10_000_000, 5_000_000, 2, "chunk_size"),  # 5 MB but not 5 MiB
    ],
)
def test_invalid_plans_cannot_be_constructed(
    size: int, chunk: int, count: int, problem: str
) -> None:
    """A plan read back from storage that breaks a rule is refused, naming the rule."""
    with pytest.raises(ValueError, match=problem):
        ChunkPlan(size, chunk, count)


def test_boundaries_and_next_chunk_follow_the_plan() -> None:
    """Only chunk starts and the full size are states the server can be in."""
    plan = plan_chunks(50_000_123, 10_000_000)
    assert plan.next_chunk(0) == Chunk(0, 0, 9_999_999)
    assert plan.next_chunk(40_000_000) == Chunk(4, 40_000_000, 50_000_122)
    assert plan.next_chunk(50_000_123) is None
    assert not plan.is_boundary(10_000_001)
    assert not plan.is_boundary(50_000_000)  # inside the last chunk
    with pytest.raises(ValueError, match="boundary"):
        plan.next_chunk(5)
