"""Media: container sniffing by bytes, the built-in MP4/MOV and WebM readers, ffprobe, limits and
fingerprints. Files are built with tests/support/media_factory.py; ffmpeg is never needed."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import struct
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import media
from orchestrator.errors import MediaError
from orchestrator.media import (
    MAX_VIDEO_BYTES,
    ContentType,
    FileMedia,
    MediaInfo,
    PhotoMedia,
    Prober,
    VideoUrlMedia,
    check_regular_file,
    fingerprint_file,
    media_fingerprint,
    probe_video,
    read_mp4,
    read_webm,
    sniff_container,
)
from tests.support import media_factory as mf
from tests.support.tiers import fuzz_examples

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "manifests" / "samples"


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- sniffing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (mf.mp4(), ContentType.MP4),
        (mf.mp4(brand=b"mp42"), ContentType.MP4),
        (mf.mp4(brand=b"qt  "), ContentType.QUICKTIME),
        (mf.mp4(with_ftyp=False), ContentType.QUICKTIME),
        (mf.webm(), ContentType.WEBM),
    ],
)
def test_container_is_decided_by_bytes(data: bytes, expected: ContentType) -> None:
    """MP4 and QuickTime are told apart by the ftyp brand, WebM by its EBML DocType."""
    assert sniff_container(data[:4096]) is expected


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"hello, this is not a video\n" * 10, "looks like text"),
        ("caption ✨ ok\n".encode() * 3, "looks like text"),
        (b"\xff\xd8\xff\xe0" + bytes(100), "JPEG"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "PNG"),
        (b"RIFF\0\0\0\0AVI LIST" + bytes(100), "AVI"),
        (mf.box(b"ftyp", b"heic\0\0\0\0mif1"), "HEIF/AVIF image"),
        (mf.box(b"ftyp", b"M4A \0\0\0\0M4A "), "audio file"),
        (mf.webm(doc_type="matroska"), "Matroska"),
        (bytes(range(256)), "match no video format"),
        (b"\0\0\0\x10ftyp", "cut short"),
    ],
)
def test_non_videos_are_named_for_what_they_are(data: bytes, words: str) -> None:
    """A file that is not MP4/MOV/WebM is refused with what it looks like and how to convert."""
    with pytest.raises(MediaError) as caught:
        sniff_container(data)
    assert words in caught.value.message
    assert caught.value.hint


def test_a_text_file_named_mp4_is_refused(tmp_path: Path) -> None:
    """Only the bytes count: notes.txt renamed to clip.mp4 is not a video."""
    path = write(tmp_path, "clip.mp4", b"shot list:\n1. intro\n2. product\n")
    with pytest.raises(MediaError, match="looks like text"):
        probe_video(path)


# -- the MP4 / MOV box reader ---------------------------------------------------------------------


def test_mp4_probe_reads_duration_size_and_frame_rate(tmp_path: Path) -> None:
    """A portrait 720x1280, 4 s, 30 fps MP4 is measured by the built-in reader alone."""
    info = probe_video(write(tmp_path, "a.mp4", mf.mp4()))
    assert info.content_type is ContentType.MP4
    assert info.duration_s == pytest.approx(4.0)
    assert (info.width, info.height) == (720, 1280)
    assert info.frame_rate == pytest.approx(30.0)
    assert info.probed_with == ("built-in MP4 reader",)
    assert info.unchecked == ()
    assert info.limit_violations() == ()


def test_mov_and_version_1_boxes(tmp_path: Path) -> None:
    """QuickTime files and 64-bit (version 1) mvhd/tkhd/mdhd are read the same way."""
    data = mf.mp4(
        brand=b"qt  ",
        version=1,
        tracks=(mf.Track(version=1, width=1080, height=1920, frames=150, duration_s=5.0),),
        duration_s=5.0,
    )
    info = probe_video(write(tmp_path, "a.mov", data))
    assert info.content_type is ContentType.QUICKTIME
    assert (info.width, info.height, info.duration_s) == (1080, 1920, pytest.approx(5.0))
    assert info.frame_rate == pytest.approx(30.0)


def test_audio_track_first_is_skipped(tmp_path: Path) -> None:
    """The video track is found by its handler even when an audio track comes first."""
    data = mf.mp4(tracks=(mf.audio_track(), mf.Track(width=1920, height=1080, frames=240)))
    info = probe_video(write(tmp_path, "a.mp4", data))
    assert (info.width, info.height) == (1920, 1080)
    assert info.frame_rate == pytest.approx(60.0)


def test_track_without_handler_uses_its_picture_size(tmp_path: Path) -> None:
    """Without hdlr boxes, the track that has a picture size is the video (audio has 0x0)."""
    tracks = (
        mf.Track(handler=None, width=0, height=0),
        mf.Track(handler=None, width=640, height=480),
    )
    info = probe_video(write(tmp_path, "a.mp4", mf.mp4(tracks=tracks)))
    assert (info.width, info.height) == (640, 480)


def test_rotated_video_reports_displayed_size(tmp_path: Path) -> None:
    """A phone clip stored 1920x1080 with a 90-degree matrix is 1080x1920 on screen."""
    data = mf.mp4(tracks=(mf.Track(width=1920, height=1080, rotated=True),))
    info = probe_video(write(tmp_path, "a.mp4", data))
    assert (info.width, info.height) == (1080, 1920)


def test_64_bit_and_to_end_of_file_box_sizes(tmp_path: Path) -> None:
    """A 64-bit mdat size (size field 1) and a last box of size 0 (to end of file) are valid."""
    for name, data in (
        ("large.mp4", mf.mp4(large_mdat=True)),
        ("large-last.mp4", mf.mp4(large_mdat=True, moov_first=False)),
        ("to-end.mp4", mf.mp4(mdat_to_end=True)),
    ):
        info = probe_video(write(tmp_path, name, data))
        assert info.duration_s == pytest.approx(4.0), name


def test_moov_after_mdat_is_found(tmp_path: Path) -> None:
    """A file not optimised for streaming (moov at the end) is read by seeking past mdat."""
    info = probe_video(write(tmp_path, "a.mp4", mf.mp4(moov_first=False, mdat_bytes=500_000)))
    assert info.duration_s == pytest.approx(4.0)


@pytest.mark.parametrize("cut", [100, 1000, 2000])
def test_truncated_mp4_is_a_clear_problem(tmp_path: Path, cut: int) -> None:
    """A download cut short (mdat running past the end, or no moov) says so and how to fix it."""
    data = mf.mp4(moov_first=True, mdat_bytes=4096)
    with pytest.raises(MediaError) as caught:
        probe_video(write(tmp_path, "cut.mp4", data[: len(data) - cut]))
    assert "cut short" in caught.value.message
    assert "again" in (caught.value.hint or "")


def test_mp4_without_moov_is_unfinished(tmp_path: Path) -> None:
    """An MP4 whose recording never finished (media data but no moov) is refused."""
    data = mf.ftyp() + mf.box(b"mdat", bytes(5000))
    with pytest.raises(MediaError, match="no 'moov' box"):
        probe_video(write(tmp_path, "raw.mp4", data))


def test_damaged_boxes_are_refused(tmp_path: Path) -> None:
    """A box smaller than its own header, or a child overrunning its parent, is damage."""
    tiny = mf.ftyp() + struct.pack(">I4s", 4, b"moov") + bytes(64)
    with pytest.raises(MediaError, match="damaged"):
        probe_video(write(tmp_path, "tiny.mp4", tiny))
    child = struct.pack(">I4s", 500, b"trak")
    overrun = mf.ftyp() + mf.box(b"moov", mf.mvhd(1000, 4000) + child) + mf.box(b"mdat", bytes(9))
    with pytest.raises(MediaError, match="overruns its container"):
        probe_video(write(tmp_path, "overrun.mp4", overrun))


def test_audio_only_mp4_is_refused(tmp_path: Path) -> None:
    """An M4A-like file branded isom but with only a sound track has no video to post."""
    data = mf.mp4(tracks=(mf.audio_track(),))
    with pytest.raises(MediaError, match="no video track"):
        probe_video(write(tmp_path, "audio.mp4", data))


def test_fragmented_mp4_duration_from_mehd(tmp_path: Path) -> None:
    """A fragmented MP4 (mvhd duration 0) takes its duration from mvex/mehd."""
    data = mf.mp4(
        tracks=(mf.Track(duration_s=0, frames=0),),
        duration_s=0,
        mvex=mf.box(b"mvex", mf.mehd(7000)),
    )
    info = probe_video(write(tmp_path, "frag.mp4", data))
    assert info.duration_s == pytest.approx(7.0)
    assert info.frame_rate is None
    assert any("frame rate not checked" in note for note in info.unchecked)


def test_unknowns_are_notes_naming_ffmpeg(tmp_path: Path) -> None:
    """What cannot be measured is a note saying why and that ffmpeg would check it."""
    data = mf.mp4(tracks=(mf.Track(duration_s=0, frames=0),), duration_s=0)
    info = probe_video(write(tmp_path, "frag.mp4", data), ffprobe=None)
    assert info.duration_s is None
    assert [note.split(":")[0] for note in info.unchecked] == [
        "duration not checked",
        "frame rate not checked",
    ]
    assert all("install ffmpeg" in note for note in info.unchecked)
    assert info.limit_violations() == ()


def test_huge_sample_table_is_skipped_not_read(tmp_path: Path) -> None:
    """A sample table bigger than the read budget leaves the frame rate unknown."""
    count = media.MAX_STTS_BYTES // 8 + 1
    fake = mf.full_box(b"stts", 0, struct.pack(">I", count) + bytes(count * 8))
    data = mf.mp4(tracks=(mf.Track(stts_override=fake),))
    info = probe_video(write(tmp_path, "big.mp4", data))
    assert info.frame_rate is None
    assert any("too large" in note for note in info.unchecked)


# -- limits ---------------------------------------------------------------------------------------


def _info(**values: float | int | None) -> MediaInfo:
    return MediaInfo(content_type=ContentType.MP4, size=1, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"frame_rate": 15.0}, "15 fps"),
        ({"frame_rate": 120.0}, "120 fps"),
        ({"width": 320, "height": 568}, "320x568"),
        ({"width": 4100, "height": 2160}, "4100x2160"),
        ({"duration_s": 600.5}, "600.5 s"),
    ],
)
def test_values_outside_tiktok_limits(values: dict[str, float], words: str) -> None:
    """Frame rate outside 23-60, a side outside 360-4096 px, or over 10 min is a violation."""
    violations = _info(**values).limit_violations()
    assert len(violations) == 1
    assert words in violations[0].message
    assert violations[0].fix


@pytest.mark.parametrize(
    "values",
    [
        {"frame_rate": 23.976},
        {"frame_rate": 23.0},
        {"frame_rate": 59.94},
        {"frame_rate": 60.0},
        {"width": 360, "height": 4096},
        {"duration_s": 600.0},
        {},
    ],
)
def test_values_inside_limits_pass(values: dict[str, float]) -> None:
    """Limits are inclusive, NTSC rates pass, and unknown values are not violations."""
    assert _info(**values).limit_violations() == ()


# -- WebM -----------------------------------------------------------------------------------------


def test_webm_probe_reads_info_and_tracks(tmp_path: Path) -> None:
    """A WebM's duration, size and frame rate come from its Info and Tracks elements."""
    info = probe_video(write(tmp_path, "a.webm", mf.webm(width=1080, height=1920, fps=25)))
    assert info.content_type is ContentType.WEBM
    assert (info.width, info.height) == (1080, 1920)
    assert info.duration_s == pytest.approx(4.0)
    assert info.frame_rate == pytest.approx(25.0)


def test_live_recorded_webm_has_unknown_duration(tmp_path: Path) -> None:
    """A browser recording (unknown Segment size, no Duration) leaves duration as a note."""
    data = mf.webm(unknown_segment_size=True, duration_s=None, fps=None)
    info = probe_video(write(tmp_path, "live.webm", data))
    assert (info.width, info.height) == (720, 1280)
    assert info.duration_s is None
    assert info.frame_rate is None
    assert len(info.unchecked) == 2


def test_truncated_webm_is_a_clear_problem(tmp_path: Path) -> None:
    """A WebM whose Segment runs past the end of the file is cut short."""
    data = mf.webm(cluster_bytes=10_000)
    with pytest.raises(MediaError, match="cut short: its Segment"):
        probe_video(write(tmp_path, "cut.webm", data[:5000]))


def test_webm_without_tracks_or_video(tmp_path: Path) -> None:
    """A WebM without a Tracks element, or with only audio, is refused."""
    with pytest.raises(MediaError, match="no WebM Tracks"):
        probe_video(write(tmp_path, "a.webm", mf.webm(tracks=False)))
    with pytest.raises(MediaError, match="no video track"):
        probe_video(write(tmp_path, "b.webm", mf.webm(video=False)))


# -- the file itself ------------------------------------------------------------------------------


def test_directory_is_refused(tmp_path: Path) -> None:
    """A folder given as the video is named as a folder."""
    (tmp_path / "videos").mkdir()
    with pytest.raises(MediaError, match="is a folder"):
        probe_video(tmp_path / "videos")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A named pipe is refused after stat alone: the bytes waiting in it are still there."""
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    # Keep both ends open so a wrong implementation would read instead of hanging the suite.
    holder = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(holder, b"\0\0\0\x18ftypisom")
        with pytest.raises(MediaError, match="named pipe"):
            probe_video(fifo)
        with pytest.raises(MediaError, match="named pipe"):
            check_regular_file(fifo)
        assert os.read(holder, 100) == b"\0\0\0\x18ftypisom"
    finally:
        os.close(holder)


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="needs /dev/null")
def test_device_is_refused() -> None:
    """A device file (here /dev/null) is not a video."""
    with pytest.raises(MediaError, match="is a device"):
        probe_video(Path("/dev/null"))


def test_empty_file_is_refused(tmp_path: Path) -> None:
    """A 0-byte file (a failed copy) says it is empty."""
    with pytest.raises(MediaError, match=r"is empty \(0 bytes\)"):
        probe_video(write(tmp_path, "empty.mp4", b""))


def test_file_over_4_gb_is_refused_without_reading(tmp_path: Path) -> None:
    """A (sparse) file of 4,000,000,001 bytes is refused from its size alone."""
    path = tmp_path / "huge.mp4"
    with open(path, "wb") as file:
        file.truncate(MAX_VIDEO_BYTES + 1)
    with pytest.raises(MediaError, match="at most 4,000,000,000"):
        probe_video(path)


def test_missing_file_and_bad_folder(tmp_path: Path) -> None:
    """A missing file, or a path through a file, says the file is not found."""
    with pytest.raises(MediaError, match="file not found"):
        probe_video(tmp_path / "nope.mp4")
    plain = write(tmp_path, "plain", b"x")
    with pytest.raises(MediaError, match="part of the path is a file"):
        probe_video(plain / "clip.mp4")


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file; needs POSIX modes"
)
def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    """A file the user cannot read says permission denied."""
    path = write(tmp_path, "locked.mp4", mf.mp4())
    path.chmod(0)
    try:
        with pytest.raises(MediaError, match="permission denied"):
            probe_video(path)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_open_refused_reads_as_permission_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the OS refuses to open the file (as for another user's file), the message says so."""
    path = write(tmp_path, "locked.mp4", mf.mp4())

    def refuse(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(MediaError) as caught:
        probe_video(path)
    assert caught.value.message == "cannot be read (permission denied)"
    assert caught.value.hint == "make it readable by the user running the orchestrator"


def test_symlink_to_a_video_is_followed(tmp_path: Path) -> None:
    """A symlink to a video is probed as the video; a symlink loop is a clear problem."""
    target = write(tmp_path, "real.mp4", mf.mp4())
    (tmp_path / "link.mp4").symlink_to(target)
    assert probe_video(tmp_path / "link.mp4").duration_s == pytest.approx(4.0)
    (tmp_path / "loop.mp4").symlink_to(tmp_path / "loop.mp4")
    with pytest.raises(MediaError, match="cannot be read"):
        probe_video(tmp_path / "loop.mp4")


# -- fingerprints ---------------------------------------------------------------------------------


class _CountingFile(io.FileIO):
    read_total = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        _CountingFile.read_total += len(data)
        return data


def test_fingerprint_reads_only_both_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 12 MiB file is fingerprinted from 2 MiB: its first and its last MiB."""
    path = tmp_path / "big.mp4"
    path.write_bytes(os.urandom(12 * 1024 * 1024))
    _CountingFile.read_total = 0
    monkeypatch.setattr(
        "orchestrator.media.fingerprint.open_regular", lambda p: _CountingFile(p, "r")
    )
    fingerprint = fingerprint_file(path)
    assert _CountingFile.read_total == 2 * 1024 * 1024
    assert fingerprint.startswith(f"file:{12 * 1024 * 1024}:")


def test_fingerprint_tells_content_not_names(tmp_path: Path) -> None:
    """Copies fingerprint alike; a change at either end or in size does not."""
    data = os.urandom(3 * 1024 * 1024)
    a = write(tmp_path, "a.mp4", data)
    copy = write(tmp_path, "copy-with-another-name.mp4", data)
    end_changed = write(tmp_path, "end.mp4", data[:-1] + b"\0" if data[-1] else data[:-1] + b"1")
    longer = write(tmp_path, "longer.mp4", data + b"\0")
    middle = bytearray(data)
    middle[len(data) // 2] ^= 0xFF
    middle_changed = write(tmp_path, "middle.mp4", bytes(middle))
    assert fingerprint_file(a) == fingerprint_file(copy)
    assert fingerprint_file(a) != fingerprint_file(end_changed)
    assert fingerprint_file(a) != fingerprint_file(longer)
    # Documented trade-off (SPEC §5): the middle is not read.
    assert fingerprint_file(a) == fingerprint_file(middle_changed)


def test_small_file_is_hashed_whole(tmp_path: Path) -> None:
    """Under 2 MiB every byte counts, including the middle."""
    data = bytearray(os.urandom(1_500_000))
    a = write(tmp_path, "a.mp4", bytes(data))
    data[750_000] ^= 1
    assert fingerprint_file(a) != fingerprint_file(write(tmp_path, "b.mp4", bytes(data)))


def test_url_and_photo_fingerprints() -> None:
    """A URL's fingerprint is the URL; photos', the URL list (cover choice excluded)."""
    assert media_fingerprint(VideoUrlMedia("https://a.example/v.mp4")) == (
        "url:https://a.example/v.mp4"
    )
    one = media_fingerprint(PhotoMedia(("https://a.example/1.jpg", "https://a.example/2.jpg"), 0))
    other_cover = media_fingerprint(
        PhotoMedia(("https://a.example/1.jpg", "https://a.example/2.jpg"), 1)
    )
    reordered = media_fingerprint(
        PhotoMedia(("https://a.example/2.jpg", "https://a.example/1.jpg"), 0)
    )
    assert one == other_cover != reordered


def test_file_media_fingerprint(tmp_path: Path) -> None:
    """A file source's media fingerprint is its content fingerprint."""
    path = write(tmp_path, "a.mp4", mf.mp4())
    assert media_fingerprint(FileMedia(path)) == fingerprint_file(path)


# -- ffprobe --------------------------------------------------------------------------------------


def _fake_ffprobe(tmp_path: Path, body: str) -> str:
    script = tmp_path / "ffprobe"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


pytestmark_posix = pytest.mark.skipif(sys.platform == "win32", reason="fake ffprobe is sh")


@pytestmark_posix
def test_ffprobe_fills_what_the_reader_could_not(tmp_path: Path) -> None:
    """A fragmented MP4's duration and frame rate come from ffprobe's JSON when installed."""
    answer = (
        '{"streams": [{"codec_type": "video", "width": 1920, "height": 1080, '
        '"avg_frame_rate": "0/0", "r_frame_rate": "25/1", '
        '"side_data_list": [{"rotation": -90}]}], "format": {"duration": "12.5"}}'
    )
    ffprobe = _fake_ffprobe(tmp_path, f"cat <<'EOF'\n{answer}\nEOF")
    data = mf.mp4(tracks=(mf.Track(duration_s=0, frames=0, width=0, height=0),), duration_s=0)
    info = probe_video(write(tmp_path, "frag.mp4", data), ffprobe=ffprobe)
    assert info.duration_s == pytest.approx(12.5)
    assert info.frame_rate == pytest.approx(25.0)
    assert (info.width, info.height) == (1080, 1920)  # rotated by -90
    assert info.probed_with == ("built-in MP4 reader", "ffprobe")
    assert info.unchecked == ()


@pytestmark_posix
def test_ffprobe_not_run_when_the_reader_knows_everything(tmp_path: Path) -> None:
    """A fully measured MP4 costs no subprocess."""
    marker = tmp_path / "ran"
    ffprobe = _fake_ffprobe(tmp_path, f"touch {marker}; exit 1")
    probe_video(write(tmp_path, "a.mp4", mf.mp4()), ffprobe=ffprobe)
    assert not marker.exists()


@pytestmark_posix
def test_ffprobe_failure_is_a_problem_with_its_reason(tmp_path: Path) -> None:
    """When ffprobe cannot read the file, its last error line is shown."""
    ffprobe = _fake_ffprobe(
        tmp_path, 'echo "file:$PWD/x: Invalid data found when processing input" >&2; exit 1'
    )
    data = mf.webm(fps=None)
    with pytest.raises(MediaError, match="Invalid data found when processing input"):
        probe_video(write(tmp_path, "a.webm", data), ffprobe=ffprobe)


@pytestmark_posix
def test_hanging_ffprobe_is_bounded(tmp_path: Path) -> None:
    """An ffprobe that does not answer within its time limit leaves values unknown."""
    ffprobe = _fake_ffprobe(tmp_path, "exec sleep 30")
    data = mf.webm(fps=None)
    info = Prober(ffprobe=ffprobe, timeout_s=0.2).probe(write(tmp_path, "a.webm", data))
    assert info.frame_rate is None
    assert any("did not answer within 0.2 s" in note for note in info.unchecked)


@pytestmark_posix
def test_ffprobe_answer_without_video_stream(tmp_path: Path) -> None:
    """ffprobe finding no video stream is a problem."""
    ffprobe = _fake_ffprobe(tmp_path, """echo '{"streams": [], "format": {}}'""")
    with pytest.raises(MediaError, match="no video stream"):
        probe_video(write(tmp_path, "a.webm", mf.webm(fps=None)), ffprobe=ffprobe)


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
def test_real_ffprobe_agrees_with_the_box_reader_on_the_samples() -> None:
    """Where ffmpeg is installed, it measures the shipped samples as the box reader does."""
    for sample in sorted(SAMPLES.glob("*.mp4")):
        ours = probe_video(sample)
        theirs = media.run_ffprobe(sample, str(shutil.which("ffprobe")))
        assert (ours.width, ours.height) == (theirs.width, theirs.height)
        assert ours.duration_s == pytest.approx(theirs.duration_s, abs=0.05)
        assert ours.frame_rate == pytest.approx(theirs.frame_rate, abs=0.01)


def test_shipped_samples_are_within_limits() -> None:
    """The demo clips are valid 720x1280, 30 fps, 4 s MP4s of a few hundred KB."""
    for name in ("clip-a.mp4", "clip-b.mp4", "clip-c.mp4"):
        info = probe_video(SAMPLES / name)
        assert info.content_type is ContentType.MP4
        assert (info.width, info.height) == (720, 1280)
        assert info.frame_rate == pytest.approx(30.0)
        assert info.duration_s is not None
        assert info.duration_s >= 3
        assert 50_000 < info.size < 1_000_000
        assert info.limit_violations() == ()


# -- robustness on arbitrary bytes ----------------------------------------------------------------


class _MeteredBytes(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        assert size is not None, "readers must never read to the end"
        assert size >= 0, "readers must never read to the end"
        data = super().read(size)
        self.bytes_read += len(data)
        return data


_BUDGET = 64 * 1024


def _boxes_strategy() -> st.SearchStrategy[bytes]:
    kinds = st.sampled_from(
        [
            b"ftyp",
            b"moov",
            b"mvhd",
            b"trak",
            b"tkhd",
            b"mdia",
            b"mdhd",
            b"hdlr",
            b"minf",
            b"stbl",
            b"stts",
            b"mdat",
            b"mvex",
            b"mehd",
            b"free",
        ]
    )
    sizes = st.one_of(st.integers(0, 64), st.sampled_from([0, 1, 7, 8, 2**32 - 1]))
    leaf = st.tuples(sizes, kinds, st.binary(max_size=40)).map(
        lambda t: struct.pack(">I4s", t[0], t[1]) + t[2]
    )
    return st.recursive(
        leaf,
        lambda children: st.tuples(kinds, st.lists(children, max_size=4)).map(
            lambda t: mf.box(t[0], b"".join(t[1]))
        ),
        max_leaves=12,
    )


@settings(
    max_examples=fuzz_examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.one_of(st.binary(max_size=600), _boxes_strategy()))
def test_box_reader_never_crashes_or_reads_unboundedly(data: bytes) -> None:
    """On any bytes the MP4 reader returns or raises MediaError, within its read budget."""
    file = _MeteredBytes(data)
    with contextlib.suppress(MediaError):
        read_mp4(file, len(data), budget=_BUDGET)
    assert file.bytes_read <= _BUDGET


@settings(max_examples=fuzz_examples(300), deadline=None)
@given(st.binary(max_size=600))
def test_webm_reader_and_sniffer_never_crash(data: bytes) -> None:
    """On any bytes the WebM reader and the sniffer return or raise MediaError, boundedly."""
    for blob in (data, b"\x1a\x45\xdf\xa3" + data):
        file = _MeteredBytes(blob)
        with contextlib.suppress(MediaError):
            read_webm(file, len(blob), budget=_BUDGET)
        assert file.bytes_read <= _BUDGET
        with contextlib.suppress(MediaError):
            sniff_container(blob)


def test_box_reader_stops_at_its_budget() -> None:
    """Thousands of boxes stop the walk at the budget with notes, not an endless read."""
    data = mf.ftyp() + mf.box(b"free") * 50_000
    result = read_mp4(io.BytesIO(data), len(data), budget=4096)
    assert result.missing() == ("duration", "size", "frame rate")
    assert "too large" in (result.reason("duration") or "")
