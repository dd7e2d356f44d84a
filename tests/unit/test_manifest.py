"""The manifest: both forms, JSON and YAML, every schema and semantic check, identity, and the
promise that every problem is reported at once with its location, line and fix."""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ManifestError
from orchestrator.manifest import (
    CAPTION_MAX_UNITS,
    MAX_DOCUMENT_VALUES,
    Entry,
    ManifestCheck,
    ManifestForm,
    Mode,
    PrivacyLevel,
    build_caption,
    check_manifest,
    entry_identity,
    load_manifest,
    manifest_schema,
    utf16_units,
)
from orchestrator.manifest import documents as manifest_documents
from orchestrator.media import (
    ContentType,
    FileMedia,
    MediaInfo,
    PhotoMedia,
    Prober,
    VideoUrlMedia,
    media_fingerprint,
)
from tests.support import media_factory as mf

REPO = Path(__file__).resolve().parents[2]
BUILT_IN = Prober(ffprobe=None)  # deterministic whether or not ffmpeg is installed here


@pytest.fixture
def studio(tmp_path: Path) -> Path:
    """A project folder with a few small videos, as a team would have it."""
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "teaser.mp4").write_bytes(mf.mp4())
    (videos / "teaser-copy.mp4").write_bytes(mf.mp4())  # same bytes, another name
    (videos / "launch.mov").write_bytes(
        mf.mp4(brand=b"qt  ", duration_s=8.0, tracks=(mf.Track(duration_s=8.0, frames=240),))
    )
    (videos / "loop.webm").write_bytes(mf.webm())
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def check(path: Path) -> ManifestCheck:
    return check_manifest(path, prober=BUILT_IN)


def problems(path: Path) -> list[str]:
    found = check(path)
    assert found.manifest is None, "expected problems, got a valid manifest"
    return [str(problem) for problem in found.problems]


def only_problem(path: Path) -> str:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


def load(path: Path) -> tuple[Entry, ...]:
    found = check(path)
    assert found.manifest is not None, [str(p) for p in found.problems]
    return found.manifest.entries


# -- the two forms --------------------------------------------------------------------------------


def test_repo_example_legacy_manifest_is_valid() -> None:
    """videos_to_upload.example.json (legacy form) loads: direct, SELF_ONLY, tags as hashtags."""
    manifest = load_manifest(REPO / "videos_to_upload.example.json", prober=BUILT_IN)
    assert manifest.form is ManifestForm.LEGACY
    first, second = manifest.entries
    assert first.user_id == "sandbox-user-1"
    assert first.mode is Mode.DIRECT
    assert first.privacy_level is PrivacyLevel.SELF_ONLY
    assert first.caption == "Behind the scenes of today's shoot #bts #studio"
    assert first.media == FileMedia(REPO / "manifests" / "samples" / "clip-a.mp4")
    assert first.content_type is ContentType.MP4
    assert first.location == "[0]"
    assert second.caption == "Quick tip: batch your edits #tips"
    assert (
        manifest.summary() == "ok: 2 entries for 2 users: 2 direct, 0 inbox, 0 photo; 0 scheduled"
    )


SPEC_EXAMPLE = """
    version: 1
    defaults:                    # every field an entry can set, except its media
      mode: direct
      privacy_level: SELF_ONLY
      disable_comment: false
      disable_duet: false
      disable_stitch: false
      is_aigc: false
      brand_content_toggle: false
      brand_organic_toggle: false
    entries:
      - id: launch-teaser
        user_id: OPEN_ID
        video_path: videos/teaser.mp4
        description: "Launch day"
        tags: ["#launch", "product"]
        privacy_level: PUBLIC_TO_EVERYONE
        video_cover_timestamp_ms: 1000
        publish_at: 2026-11-22T18:00:00Z
      - user_id: OPEN_ID
        mode: inbox
        video_path: videos/launch.mov
      - user_id: OTHER_ID
        video_url: https://media.example.com/teaser.mp4
        is_aigc: true
      - user_id: OTHER_ID
        photo_urls: [https://media.example.com/1.jpg, https://media.example.com/2.jpg]
        photo_cover_index: 1
        title: "Behind the scenes"
        description: "Set photos"
        auto_add_music: true
"""


def test_version_1_yaml_from_the_spec(studio: Path) -> None:
    """The SPEC's example loads with defaults applied, entry values winning, kinds decided."""
    manifest = load_manifest(write(studio, "manifest.yaml", SPEC_EXAMPLE), prober=BUILT_IN)
    assert manifest.form is ManifestForm.VERSION_1
    teaser, inbox, url, photos = manifest.entries
    assert teaser.id == "launch-teaser"
    assert teaser.privacy_level is PrivacyLevel.PUBLIC_TO_EVERYONE
    assert teaser.caption == "Launch day #launch #product"
    assert teaser.video_cover_timestamp_ms == 1000
    assert teaser.publish_at == datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
    assert teaser.duration_s == pytest.approx(4.0)
    assert inbox.mode is Mode.INBOX
    assert inbox.privacy_level is PrivacyLevel.SELF_ONLY
    assert inbox.content_type is ContentType.QUICKTIME
    assert url.media == VideoUrlMedia("https://media.example.com/teaser.mp4")
    assert url.is_aigc is True
    assert url.content_type is None
    assert photos.media == PhotoMedia(
        ("https://media.example.com/1.jpg", "https://media.example.com/2.jpg"), 1
    )
    assert photos.title == "Behind the scenes"
    assert photos.caption == "Set photos"
    assert photos.auto_add_music is True
    assert manifest.users == ("OPEN_ID", "OTHER_ID")
    assert manifest.summary() == (
        "ok: 4 entries for 2 users: 2 direct, 1 inbox, 1 photo; 1 scheduled"
    )


def test_json_version_1_and_defaults_for_user_id(studio: Path) -> None:
    """JSON works the same; user_id may come from defaults for a one-account manifest."""
    path = write(
        studio,
        "m.json",
        json.dumps(
            {
                "version": 1,
                "defaults": {"user_id": "solo", "tags": ["daily"], "mode": "inbox"},
                "entries": [
                    {"video_path": "videos/teaser.mp4"},
                    {"video_path": "videos/loop.webm", "tags": ["loop"], "mode": "direct"},
                ],
            }
        ),
    )
    first, second = load(path)
    assert (first.user_id, first.mode, first.caption) == ("solo", Mode.INBOX, "#daily")
    # An entry's value replaces the default, tags included.
    assert (second.mode, second.caption) == (Mode.DIRECT, "#loop")
    assert second.content_type is ContentType.WEBM


def test_extensionless_manifest_is_sniffed(studio: Path) -> None:
    """A manifest without .json/.yaml is read as JSON when it starts with { or [, else YAML."""
    legacy = [{"user_id": "u", "video_path": "videos/teaser.mp4"}]
    assert len(load(write(studio, "batch", json.dumps(legacy)))) == 1
    assert len(load(write(studio, "batch2", "- user_id: u\n  video_path: videos/teaser.mp4\n")))


def test_utf16_json_with_bom_is_read(studio: Path) -> None:
    """A manifest saved as UTF-16 with a byte-order mark (Windows editors) is read."""
    path = studio / "m.json"
    text = json.dumps([{"user_id": "u", "video_path": "videos/teaser.mp4", "description": "é"}])
    path.write_bytes(text.encode("utf-16"))
    assert load(path)[0].caption == "é"


# -- parse errors ---------------------------------------------------------------------------------


def test_malformed_json_reports_line_and_column(studio: Path) -> None:
    """A trailing comma in JSON names the line and column."""
    path = write(
        studio,
        "m.json",
        """
        [
          {"user_id": "u", "video_path": "videos/teaser.mp4"},
        ]
        """,
    )
    problem = only_problem(path)
    assert problem.startswith("manifest: invalid JSON: ")
    assert "(line 3, column 1)" in problem
    assert "trailing commas" in problem


def test_malformed_yaml_reports_line_and_column(studio: Path) -> None:
    """Bad YAML indentation names the line and column."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: u
             video_path: videos/teaser.mp4
        """,
    )
    problem = only_problem(path)
    assert problem.startswith("manifest: invalid YAML: ")
    assert "(line 4, column 16)" in problem


def test_several_yaml_documents_are_refused(studio: Path) -> None:
    """A manifest is one YAML document."""
    path = write(studio, "m.yaml", "version: 1\n---\nversion: 1\n")
    assert "expected a single document" in only_problem(path)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "is empty"),
        (b"  \n\t\n", "is empty"),
        (b"\xff\xfe\x00", "is not valid UTF-16 text"),
        (b'[{"user_id": "caf\xe9"}]', "is not valid UTF-8 text (byte 0xe9 at offset 17)"),
    ],
)
def test_empty_or_undecodable_manifest(studio: Path, raw: bytes, words: str) -> None:
    """An empty or non-UTF-8 file is one problem, not a traceback."""
    path = studio / "m.json"
    path.write_bytes(raw)
    assert words in only_problem(path)


def test_missing_manifest_and_folder(studio: Path) -> None:
    """A missing manifest or a folder is reported as such."""
    assert "manifest file not found" in only_problem(studio / "nope.yaml")
    assert "is a folder" in only_problem(studio / "videos")


def test_duplicate_keys_in_yaml_and_json_are_errors(studio: Path) -> None:
    """A key given twice is an error naming both lines, not a silent overwrite."""
    yaml_path = write(
        studio,
        "m.yaml",
        """
        - user_id: u
          video_path: videos/teaser.mp4
          description: first
          description: second
        """,
    )
    assert only_problem(yaml_path) == (
        "[0].description: duplicate key 'description' (first set on line 3) (line 4); "
        "fix: keep one of them: the later one would silently win"
    )
    json_path = write(
        studio,
        "m.json",
        """
        {"version": 1,
         "entries": [
           {"user_id": "u", "video_path": "videos/teaser.mp4",
            "user_id": "v"}
         ]}
        """,
    )
    assert only_problem(json_path).startswith(
        "entries[0].user_id: duplicate key 'user_id' (first set on line 3) (line 4)"
    )


def test_yaml_tags_that_build_objects_are_refused(studio: Path) -> None:
    """!!python/object and other non-data tags are refused with their line, never constructed."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - !!python/object/apply:os.system ["echo pwned"]
          - user_id: !custom u
            video_path: videos/teaser.mp4
        """,
    )
    found = problems(path)
    assert len(found) == 2
    assert "YAML tag '!!python/object/apply:os.system' is not allowed" in found[0]
    assert "(line 3, column 5)" in found[0]
    assert "YAML tag '!custom'" in found[1]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("?\n", "(empty)"),
        ("version: 1\nentries:\n  - 5: x\n", "'5'"),
        ("true: 2\n", "'true'"),
        ("[a]: 1\n", "a list"),
        ("{a: 1}: 2\n", "a mapping"),
    ],
)
def test_yaml_keys_that_are_not_text_are_problems_not_a_crash(
    studio: Path, text: str, shown: str
) -> None:
    """A YAML key that is not text (empty, a number, a boolean, a list, a mapping) is a
    problem with its line; it once crashed the loader with a TypeError (found by fuzzing)."""
    path = studio / "keys.yaml"
    path.write_text(text)
    problem = only_problem(path)
    assert f"the key {shown} is not text" in problem
    assert "(line " in problem


def test_yaml_alias_that_contains_itself_is_stopped_at_once(studio: Path) -> None:
    """A recursive alias (`a: &a [*a]`) is a problem found at once, in bounded memory: walking
    its endless nesting to the value limit once ran the machine out of memory (fuzzing)."""
    path = studio / "loop.yaml"
    path.write_text("version: 1\nentries: &e\n  - user_id: u\n    video_path: *e\n")
    started = time.perf_counter()
    assert "more than 64 levels deep" in only_problem(path)
    assert time.perf_counter() - started < 2


def _alias_bomb(studio: Path) -> Path:
    """A manifest whose aliases expand to a billion values (ten levels of ten)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append("version: 1")
    lines.append("entries: *a8")
    return write(studio, "bomb.yaml", "\n".join(lines) + "\n")


def test_yaml_alias_bomb_is_stopped(studio: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Aliases that expand to a billion values stop with a problem at the value limit (here
    lowered to 10,000, so the walk is short; the product's own limit is the slow-tier test
    below). Expanding them all would never finish."""
    monkeypatch.setattr(manifest_documents, "MAX_DOCUMENT_VALUES", 10_000)
    assert "expands to more than 10,000 values" in only_problem(_alias_bomb(studio))


@pytest.mark.slow  # the same walk at 2,000,000 values (~2 s); test_yaml_alias_bomb_is_stopped
def test_yaml_alias_bomb_is_stopped_at_the_product_limit(studio: Path) -> None:
    """With the shipped limit the bomb stops with the same problem."""
    assert f"expands to more than {MAX_DOCUMENT_VALUES:,} values" in only_problem(
        _alias_bomb(studio)
    )


def test_yaml_merge_keys_work(studio: Path) -> None:
    """YAML anchors and merge keys (<<) are plain data and allowed."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - &base
            user_id: u
            video_path: videos/teaser.mp4
            privacy_level: MUTUAL_FOLLOW_FRIENDS
          - <<: *base
            video_path: videos/launch.mov
        """,
    )
    _first, second = load(path)
    assert second.privacy_level is PrivacyLevel.MUTUAL_FOLLOW_FRIENDS
    assert isinstance(second.media, FileMedia)
    assert second.media.path.name == "launch.mov"


# -- schema problems ------------------------------------------------------------------------------


def test_list_where_an_object_is_expected(studio: Path) -> None:
    """Entries given as a mapping, or an entry given as a list, say what was expected."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        defaults: [SELF_ONLY]
        entries:
          - [u, videos/teaser.mp4]
        """,
    )
    assert problems(path) == [
        "defaults: expected a mapping (field: value), got a list ['SELF_ONLY'] (line 2); "
        "fix: write `defaults` as a mapping of field: value",
        "entries[0]: expected a mapping (field: value), got a list ['u', 'videos/teaser.mp4'] "
        "(line 4); fix: write each entry as a mapping of field: value",
    ]
    single = write(studio, "single.yaml", "version: 1\nentries:\n  user_id: u\n")
    assert "entries: expected a list, got a mapping" in only_problem(single)


def test_top_level_that_is_neither_form(studio: Path) -> None:
    """A bare string is neither an object nor a list."""
    path = write(studio, "m.yaml", "just some text\n")
    assert "manifest: expected a mapping (field: value), got text" in only_problem(path)


def test_unknown_keys_are_caught_with_a_suggestion(studio: Path) -> None:
    """A typo like privacy_lvl is an error that suggests privacy_level, at the key's line."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: u
            video_path: videos/teaser.mp4
            privacy_lvl: PUBLIC_TO_EVERYONE
        """,
    )
    assert only_problem(path) == (
        "entries[0].privacy_lvl: unknown field 'privacy_lvl' (line 5); "
        "fix: did you mean 'privacy_level'?"
    )


def test_unknown_key_in_legacy_and_top_level(studio: Path) -> None:
    """Legacy entries and the top level refuse unknown keys too."""
    legacy = write(
        studio, "l.json", '[{"user_id": "u", "video_path": "videos/teaser.mp4", "x": 1}]'
    )
    assert only_problem(legacy).startswith("[0].x: unknown field 'x'")
    top = write(studio, "t.yaml", "version: 1\nentires: []\n")
    found = problems(top)
    assert "entires: unknown field 'entires' (line 2); fix: did you mean 'entries'?" in found
    assert any(problem.startswith("entries: 'entries' is missing") for problem in found)


def test_wrong_enum_values(studio: Path) -> None:
    """Enum mistakes list the choices and suggest the closest one."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: u
            video_path: videos/teaser.mp4
            privacy_level: PUBLIC
            mode: draft
        """,
    )
    assert problems(path) == [
        "entries[0].privacy_level: 'PUBLIC' is not one of ['PUBLIC_TO_EVERYONE', "
        "'MUTUAL_FOLLOW_FRIENDS', 'FOLLOWER_OF_CREATOR', 'SELF_ONLY'] (line 5); "
        "fix: did you mean 'PUBLIC_TO_EVERYONE'?",
        "entries[0].mode: 'draft' is not one of ['direct', 'inbox'] (line 6); "
        "fix: use direct (publish now) or inbox (draft in the creator's inbox)",
    ]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("disable_comment: 'yes'", "disable_comment: expected a boolean, got text 'yes'"),
        ("video_cover_timestamp_ms: -5", "-5 is out of range (must be at least 0)"),
        ("video_cover_timestamp_ms: 1.5", "expected a whole number, got a number 1.5"),
        ("tags: launch", "tags: expected a list, got text 'launch'"),
        ("tags: ['two words']", "tags[0]: 'two words' is not valid here"),
        ("id: 'has space'", "id: 'has space' is not valid here"),
        ("id: 'sha256:abc'", "id: 'sha256:abc' is not valid here"),
        ("publish_at: 1700000000", "publish_at: expected a string, got a number"),
        ("description: no", "got true/false False (line 5); fix: put the value in quotes"),
    ],
)
def test_wrong_types_and_patterns(studio: Path, line: str, words: str) -> None:
    """Each wrongly typed or shaped field is one problem at its own location, with a fix."""
    path = write(
        studio,
        "m.yaml",
        f"""
        version: 1
        entries:
          - user_id: u
            video_path: videos/teaser.mp4
            {line}
        """,
    )
    problem = only_problem(path)
    assert words in problem
    assert "; fix: " in problem


def test_wrong_version_and_empty_entries(studio: Path) -> None:
    """version must be 1 and entries must not be empty."""
    path = write(studio, "m.yaml", "version: 2\nentries: []\n")
    assert problems(path) == [
        "version: must be 1, got 2 (line 1); fix: set `version: 1` (the only version this "
        "orchestrator reads)",
        "entries: needs at least 1 item(s) (line 2); fix: list at least one entry under `entries`",
    ]


def test_schema_is_draft_2020_12_and_strict(studio: Path) -> None:
    """The shipped schema is valid draft 2020-12 and closes every object to unknown keys."""
    import jsonschema

    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for name in ("manifestV1", "defaults", "entry", "legacyEntry"):
        assert schema["$defs"][name]["additionalProperties"] is False
    entry_fields = set(schema["$defs"]["entry"]["properties"])
    assert {
        "privacy_level",
        "disable_comment",
        "disable_duet",
        "disable_stitch",
        "video_cover_timestamp_ms",
        "brand_content_toggle",
        "brand_organic_toggle",
        "is_aigc",
        "auto_add_music",
        "photo_cover_index",
        "title",
        "description",
    } <= entry_fields


# -- media problems -------------------------------------------------------------------------------


def _one_video(studio: Path, video_path: str) -> Path:
    return write(
        studio,
        "m.yaml",
        f"""
        version: 1
        entries:
          - user_id: u
            video_path: {json.dumps(video_path)}
        """,
    )


def test_directory_as_video_path(studio: Path) -> None:
    """A folder as video_path is a problem at entries[0].video_path with the resolved path."""
    problem = only_problem(_one_video(studio, "videos"))
    assert problem == (
        f"entries[0].video_path: 'videos' ({studio / 'videos'}) is a folder, not a video file "
        "(line 4); fix: point it at the video file inside the folder"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_as_video_path(studio: Path) -> None:
    """A FIFO as video_path is refused without blocking on it."""
    os.mkfifo(studio / "videos" / "pipe.mp4")
    assert "is a named pipe (FIFO)" in only_problem(_one_video(studio, "videos/pipe.mp4"))


def test_video_path_with_a_nul_byte_is_a_problem_not_a_crash(studio: Path) -> None:
    """A video_path holding a NUL byte is a problem naming it; it once crashed the loader
    with "embedded null byte" (found by fuzzing)."""
    problem = only_problem(_one_video(studio, "videos/a\x00.mp4"))
    assert "contains a NUL character" in problem


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_as_video_path_is_refused_without_reading_it(studio: Path) -> None:
    """A video_path to a device (/dev/zero, which never ends) is refused at once."""
    started = time.perf_counter()
    assert "is a device, not a regular file" in only_problem(_one_video(studio, "/dev/zero"))
    assert time.perf_counter() - started < 2


def test_text_file_named_mp4(studio: Path) -> None:
    """A text file with a .mp4 name is refused by its bytes."""
    (studio / "videos" / "notes.mp4").write_text("todo: export the video\n")
    problem = only_problem(_one_video(studio, "videos/notes.mp4"))
    assert "is not an MP4, MOV or WebM video by its content (it looks like text" in problem
    assert "fix: TikTok accepts MP4 (recommended), MOV and WebM" in problem


def test_truncated_mp4(studio: Path) -> None:
    """A cut-short MP4 is reported at its entry with the fix."""
    data = mf.mp4(mdat_bytes=10_000)
    (studio / "videos" / "cut.mp4").write_bytes(data[:6000])
    problem = only_problem(_one_video(studio, "videos/cut.mp4"))
    assert "'videos/cut.mp4'" in problem
    assert "is cut short: its 'mdat' box" in problem
    assert "fix: the copy or export did not finish" in problem


def test_empty_and_missing_video(studio: Path) -> None:
    """An empty file and a missing file are both named."""
    (studio / "videos" / "empty.mp4").write_bytes(b"")
    assert "is empty (0 bytes)" in only_problem(_one_video(studio, "videos/empty.mp4"))
    assert "file not found" in only_problem(_one_video(studio, "videos/typo.mp4"))


def test_dotdot_path_is_allowed_and_resolved(studio: Path) -> None:
    """A manifest in a subfolder may reach ../videos; the entry holds the resolved path."""
    path = write(
        studio,
        "manifests/nightly.yaml",
        """
        version: 1
        entries:
          - user_id: u
            video_path: ../videos/./teaser.mp4
        """,
    )
    (entry,) = load(path)
    assert entry.media == FileMedia((studio / "videos" / "teaser.mp4").resolve())
    assert ".." not in str(entry.media.path)  # type: ignore[union-attr]


def test_home_relative_and_absolute_paths(studio: Path) -> None:
    """~ expands to the user's home; absolute paths are used as they are."""
    home = Path.home()
    (home / "clip.mp4").write_bytes(mf.mp4())
    path = write(
        studio,
        "m.yaml",
        f"""
        - user_id: u
          video_path: ~/clip.mp4
        - user_id: v
          video_path: {studio / "videos" / "teaser.mp4"}
        """,
    )
    first, second = load(path)
    assert first.media == FileMedia((home / "clip.mp4").resolve())
    assert second.media == FileMedia((studio / "videos" / "teaser.mp4").resolve())


def test_media_limits_are_problems_and_unknowns_are_notes(studio: Path) -> None:
    """A 15 fps clip is a problem; a fragmented clip's unknown duration is a note."""
    (studio / "videos" / "slow.mp4").write_bytes(mf.mp4(tracks=(mf.Track(frames=60),)))
    (studio / "videos" / "frag.mp4").write_bytes(
        mf.mp4(tracks=(mf.Track(duration_s=0, frames=0),), duration_s=0)
    )
    assert "runs at 15 fps; TikTok accepts 23 to 60 fps" in only_problem(
        _one_video(studio, "videos/slow.mp4")
    )
    found = check(_one_video(studio, "videos/frag.mp4"))
    assert found.manifest is not None
    assert found.notes == (
        f"'videos/frag.mp4' ({studio / 'videos' / 'frag.mp4'}): duration not checked: the file "
        "is fragmented and does not state its duration; install ffmpeg (which provides "
        "ffprobe) to check it",
        f"'videos/frag.mp4' ({studio / 'videos' / 'frag.mp4'}): frame rate not checked: the "
        "file is fragmented (frames are in fragments); install ffmpeg (which provides ffprobe) "
        "to check it",
    )


def test_cover_timestamp_after_the_end(studio: Path) -> None:
    """A cover frame past the video's end is a problem."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: u
            video_path: videos/teaser.mp4
            video_cover_timestamp_ms: 4500
        """,
    )
    assert "4500 ms is after the end of the video (4.00 s)" in only_problem(path)


# -- sources and kinds ----------------------------------------------------------------------------


def test_exactly_one_media_source(studio: Path) -> None:
    """No media, or two media sources, are each a problem."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: u
            description: forgot the video
          - user_id: u
            video_path: videos/teaser.mp4
            video_url: https://media.example.com/teaser.mp4
        """,
    )
    assert problems(path) == [
        "entries[0]: has no media (line 3); fix: set exactly one of video_path, video_url or "
        "photo_urls",
        "entries[1].video_url: has more than one media source (video_path and video_url) "
        "(line 7); fix: keep exactly one of video_path, video_url or photo_urls per entry",
    ]


def test_urls_must_be_https(studio: Path) -> None:
    """http URLs, for videos and photos, are refused."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: u
            video_url: http://media.example.com/teaser.mp4
          - user_id: u
            photo_urls: [https://media.example.com/1.jpg, http://media.example.com/2.jpg]
        """,
    )
    found = problems(path)
    assert [problem.split(":")[0] for problem in found] == [
        "entries[0].video_url",
        "entries[1].photo_urls[1]",
    ]
    assert all("use an https:// URL" in problem for problem in found)


def test_photo_url_count_and_cover_index(studio: Path) -> None:
    """Photo posts need 1-35 URLs and a cover index inside the list."""
    urls = [f"https://media.example.com/{n}.jpg" for n in range(36)]
    path = write(
        studio,
        "m.json",
        json.dumps(
            {
                "version": 1,
                "entries": [
                    {"user_id": "u", "photo_urls": urls},
                    {"user_id": "u", "photo_urls": []},
                    {"user_id": "u", "photo_urls": urls[:2], "photo_cover_index": 2},
                    {"user_id": "u", "photo_urls": urls[:35], "photo_cover_index": 34},
                ],
            }
        ),
    )
    found = problems(path)
    assert len(found) == 3
    assert found[0].startswith("entries[0].photo_urls: has 36 items; at most 35 are allowed")
    assert found[1].startswith("entries[1].photo_urls: needs at least 1 item(s)")
    assert found[2].startswith(
        "entries[2].photo_cover_index: 2 is out of range for 2 photos (0-based: 0 to 1)"
    )


def test_fields_for_the_other_kind_of_post(studio: Path) -> None:
    """Video-only fields on a photo post, and photo-only fields on a video, are problems."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: u
            photo_urls: [https://media.example.com/1.jpg]
            video_cover_timestamp_ms: 10
            disable_duet: true
          - user_id: u
            video_path: videos/teaser.mp4
            title: A title
        """,
    )
    found = problems(path)
    assert [problem.split(" (line")[0] for problem in found] == [
        "entries[0].video_cover_timestamp_ms: 'video_cover_timestamp_ms' applies to videos only",
        "entries[0].disable_duet: 'disable_duet' applies to videos only",
        "entries[1].title: 'title' applies to photo posts only",
    ]
    assert "a video's caption is description + tags" in found[2]


def test_defaults_for_the_other_kind_are_ignored(studio: Path) -> None:
    """defaults.disable_duet does not trouble photo entries; defaults.title not videos."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        defaults: {disable_duet: true, title: Series, auto_add_music: true}
        entries:
          - user_id: u
            photo_urls: [https://media.example.com/1.jpg]
          - user_id: u
            video_path: videos/teaser.mp4
        """,
    )
    photo, video = load(path)
    assert (photo.disable_duet, photo.title, photo.auto_add_music) == (False, "Series", True)
    assert (video.disable_duet, video.title, video.auto_add_music) == (True, None, False)


def test_missing_user_id(studio: Path) -> None:
    """user_id must be set on the entry or in defaults."""
    path = write(studio, "m.yaml", "version: 1\nentries:\n  - video_path: videos/teaser.mp4\n")
    assert only_problem(path) == (
        "entries[0].user_id: 'user_id' is missing (required) (line 3); "
        "fix: set user_id on the entry or in `defaults`"
    )
    legacy = write(studio, "l.json", '[{"video_path": "videos/teaser.mp4"}]')
    assert only_problem(legacy).startswith("[0].user_id: 'user_id' is missing (required)")
    empty = write(studio, "e.json", '[{"user_id": "", "video_path": "videos/teaser.mp4"}]')
    assert only_problem(empty).startswith("[0].user_id: '' is not valid here")


def test_branded_content_cannot_be_private(studio: Path) -> None:
    """brand_content_toggle with SELF_ONLY is refused (TikTok's branded-content rule)."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: u
            video_path: videos/teaser.mp4
            brand_content_toggle: true
        """,
    )
    assert "branded content cannot be private" in only_problem(path)


def test_inbox_caption_is_a_note(studio: Path) -> None:
    """An inbox video with a caption validates, with a note that TikTok ignores it."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: u
            mode: inbox
            video_path: videos/teaser.mp4
            description: not sent
        """,
    )
    found = check(path)
    assert found.manifest is not None
    assert found.notes == (
        "entries[0]: inbox uploads take only the video; TikTok ignores their caption and post "
        "settings (the creator sets them in the app)",
    )


# -- captions and text ----------------------------------------------------------------------------


def test_caption_building() -> None:
    """Tags get '#', repeats and tags already in the description are not added twice."""
    assert build_caption("", ["a", "#b"]) == "#a #b"
    assert build_caption("", []) == ""
    assert build_caption("Launch day  ", ["#launch", "Launch", "product", "##product"]) == (
        "Launch day #launch #product"
    )
    assert build_caption("New #Drop today", ["drop", "sale"]) == "New #Drop today #sale"
    assert build_caption("Café", ["été", "ÉTÉ"]) == "Café #été"


def test_empty_description_with_tags(studio: Path) -> None:
    """A 0-length description with tags gives a caption of just the hashtags."""
    path = write(
        studio,
        "m.json",
        '[{"user_id": "u", "video_path": "videos/teaser.mp4", "description": "", '
        '"tags": ["behindthescenes", "#studio"]}]',
    )
    assert load(path)[0].caption == "#behindthescenes #studio"


def test_emoji_count_two_utf16_units(studio: Path) -> None:
    """2200 UTF-16 units is the limit: 1100 emoji fit, 1101 do not (each counts 2)."""
    assert utf16_units("😀") == 2
    assert utf16_units("é") == 1
    ok = [{"user_id": "u", "video_path": "videos/teaser.mp4", "description": "😀" * 1100}]
    assert utf16_units(load(write(studio, "ok.json", json.dumps(ok)))[0].caption) == 2200
    over = [{"user_id": "u", "video_path": "videos/teaser.mp4", "description": "😀" * 1100}]
    over[0]["tags"] = ["x"]  # type: ignore[assignment]
    problem = only_problem(write(studio, "over.json", json.dumps(over)))
    assert "the caption (description + tags) is 2203 UTF-16 units; TikTok allows 2200" in problem
    assert "(an emoji counts 2)" in problem
    assert CAPTION_MAX_UNITS == 2200


def test_photo_title_and_description_limits(studio: Path) -> None:
    """A photo title is at most 90 units, its description (with tags) at most 4000."""
    path = write(
        studio,
        "m.json",
        json.dumps(
            {
                "version": 1,
                "entries": [
                    {
                        "user_id": "u",
                        "photo_urls": ["https://m.example.com/1.jpg"],
                        "title": "😀" * 45,
                        "description": "d" * 4000,
                    },
                    {
                        "user_id": "u",
                        "photo_urls": ["https://m.example.com/2.jpg"],
                        "title": "😀" * 45 + "!",
                        "description": "d" * 3999,
                        "tags": ["x"],
                    },
                ],
            }
        ),
    )
    found = problems(path)
    assert [problem.split(":")[0] for problem in found] == [
        "entries[1].description",
        "entries[1].title",
    ]
    assert "is 4002 UTF-16 units; TikTok allows 4000" in found[0]
    assert "is 91 UTF-16 units; TikTok allows 90 for a photo title" in found[1]


def test_lone_surrogate_in_caption(studio: Path) -> None:
    """A broken emoji (unpaired surrogate, possible in JSON) is reported, not sent."""
    path = write(
        studio,
        "m.json",
        '[{"user_id": "u", "video_path": "videos/teaser.mp4", "description": "a\\ud83d"}]',
    )
    assert "unpaired UTF-16 surrogate" in only_problem(path)


# -- publish_at -----------------------------------------------------------------------------------


def test_publish_at_needs_a_timezone(studio: Path) -> None:
    """publish_at without a timezone is an error that shows how to add one."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: u
            video_path: videos/teaser.mp4
            publish_at: 2026-11-22T18:00:00
          - user_id: u
            video_path: videos/launch.mov
            publish_at: next tuesday
        """,
    )
    assert problems(path) == [
        "entries[0].publish_at: '2026-11-22T18:00:00' has no timezone (line 5); "
        "fix: add one: 2026-11-22T18:00:00Z for UTC, or an offset like +02:00",
        "entries[1].publish_at: 'next tuesday' is not an ISO 8601 date-time (line 8); "
        "fix: write it like 2026-11-22T18:00:00Z or 2026-11-22T19:00:00+01:00",
    ]


def test_publish_at_offsets_become_utc(studio: Path) -> None:
    """An offset time is kept as the same instant, in UTC."""
    path = write(
        studio,
        "m.yaml",
        """
        - user_id: u
          video_path: videos/teaser.mp4
        """,
    )
    assert load(path)[0].publish_at is None
    v1 = write(
        studio,
        "v1.yaml",
        """
        version: 1
        defaults: {publish_at: "2026-11-22T19:30:00+01:30"}
        entries:
          - {user_id: u, video_path: videos/teaser.mp4}
        """,
    )
    moment = load(v1)[0].publish_at
    assert moment == datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
    assert moment is not None
    assert moment.tzinfo is UTC


# -- duplicates and identity ----------------------------------------------------------------------


def test_same_post_twice_is_reported_with_both_locations(studio: Path) -> None:
    """Same user, mode and video content (even under another name or spelling) is one post."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: u
            video_path: videos/teaser.mp4
            description: first try
          - user_id: u
            video_path: ./videos/../videos/teaser.mp4
            description: caption typo fixed
          - user_id: u
            video_path: videos/teaser-copy.mp4
          - user_id: u
            video_url: https://media.example.com/a.mp4
          - user_id: u
            video_url: https://media.example.com/a.mp4
        """,
    )
    assert [problem.split("; fix")[0] for problem in problems(path)] == [
        "entries[1]: is the same post as entries[0] on line 3: same user, mode and video content "
        "(line 6)",
        "entries[2]: is the same post as entries[0] on line 3: same user, mode and video content "
        "(line 9)",
        "entries[4]: is the same post as entries[3] on line 11: same user, mode and video URL "
        "(line 13)",
    ]


def test_same_video_for_other_users_modes_or_ids_is_fine(studio: Path) -> None:
    """Another user, another mode, or distinct explicit ids make distinct posts."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - {user_id: u, video_path: videos/teaser.mp4}
          - {user_id: v, video_path: videos/teaser.mp4}
          - {user_id: u, video_path: videos/teaser.mp4, mode: inbox}
          - {id: rerun-1, user_id: u, video_path: videos/teaser.mp4}
          - {id: rerun-2, user_id: u, video_path: videos/teaser.mp4}
        """,
    )
    assert len(load(path)) == 5


def test_duplicate_ids_are_reported(studio: Path) -> None:
    """An id used twice names the first use."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - {id: teaser, user_id: u, video_path: videos/teaser.mp4}
          - {id: teaser, user_id: v, video_path: videos/launch.mov}
        """,
    )
    assert only_problem(path) == (
        "entries[1].id: id 'teaser' is already used by entries[0] on line 3 (line 4); "
        "fix: give each entry its own id"
    )


def test_entry_identity(studio: Path) -> None:
    """Identity is the id when given, else a hash of user, mode and media, never the caption."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - {id: teaser, user_id: u, video_path: videos/teaser.mp4}
          - {user_id: u, video_path: videos/teaser.mp4, description: one}
          - {user_id: v, video_path: videos/teaser.mp4, description: two}
        """,
    )
    named, first, other_user = load(path)
    fingerprint = media_fingerprint(first.media)
    assert entry_identity(named, fingerprint) == "teaser"
    identity = entry_identity(first, fingerprint)
    assert identity.startswith("sha256:")
    assert len(identity) == 7 + 64
    assert entry_identity(other_user, fingerprint) != identity
    recaptioned = write(
        studio,
        "again.yaml",
        """
        version: 1
        entries:
          - {user_id: u, video_path: videos/teaser-copy.mp4, description: typo fixed}
        """,
    )
    (again,) = load(recaptioned)
    assert entry_identity(again, media_fingerprint(again.media)) == identity


# -- all at once, fast, offline -------------------------------------------------------------------


def test_every_problem_is_listed_at_once(studio: Path) -> None:
    """A manifest with eight different mistakes reports all eight, in file order."""
    (studio / "videos" / "notes.mp4").write_text("not a video")
    path = write(
        studio,
        "m.yaml",
        f"""
        version: 1
        entries:
          - user_id: u
            video_path: videos/notes.mp4
            privacy_lvl: SELF_ONLY
          - user_id: u
            video_path: videos
            privacy_level: PUBLIC
          - user_id: u
            video_url: http://x.example/v.mp4
            publish_at: 2026-01-01T00:00:00
          - user_id: u
            photo_urls: [https://x.example/1.jpg]
            photo_cover_index: 1
            title: {"Launch day! " * 8}
        """,
    )
    found = problems(path)
    assert [problem.split(":")[0] for problem in found] == [
        "entries[0].video_path",
        "entries[0].privacy_lvl",
        "entries[1].video_path",
        "entries[1].privacy_level",
        "entries[2].video_url",
        "entries[2].publish_at",
        "entries[3].photo_cover_index",
        "entries[3].title",
    ]
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, prober=BUILT_IN)
    assert caught.value.problems == found
    assert str(caught.value) == f"{path}: 8 problems found; nothing was sent"


class _CountingProber(Prober):
    def __init__(self, calls: list[Path]) -> None:
        super().__init__(ffprobe=None)
        object.__setattr__(self, "_calls", calls)

    def probe(self, path: Path) -> MediaInfo:
        self._calls.append(path)  # type: ignore[attr-defined]
        return super().probe(path)


def ten_thousand_entries(folder: Path) -> Path:
    entries: list[dict[str, Any]] = [
        {
            "id": f"post-{index:05d}",
            "user_id": f"user-{index % 7}",
            "video_path": ["videos/teaser.mp4", "videos/launch.mov", "videos/loop.webm"][index % 3],
            "description": f"Daily clip number {index} ✨",
            "tags": ["daily", "#studio"],
            "privacy_level": "SELF_ONLY",
            "publish_at": "2026-11-22T18:00:00Z" if index % 2 else None,
        }
        for index in range(10_000)
    ]
    for entry in entries:
        if entry["publish_at"] is None:
            del entry["publish_at"]
    return write(folder, "big.json", json.dumps({"version": 1, "entries": entries}))


@pytest.mark.slow
def test_ten_thousand_entries_probe_each_file_once(studio: Path) -> None:
    """10,000 entries over 3 files validate quickly, probing each file exactly once."""
    path = ten_thousand_entries(studio)
    calls: list[Path] = []
    started = time.perf_counter()
    manifest = load_manifest(path, prober=_CountingProber(calls))
    elapsed = time.perf_counter() - started
    assert len(manifest.entries) == 10_000
    assert sorted(p.name for p in calls) == ["launch.mov", "loop.webm", "teaser.mp4"]
    assert manifest.summary() == (
        "ok: 10000 entries for 7 users: 10000 direct, 0 inbox, 0 photo; 5000 scheduled"
    )
    # The benchmark measures this properly; here only a gross regression (say, quadratic work or
    # probing per entry) should fail, even on a slow CI machine.
    assert elapsed < 5


@pytest.mark.slow
def test_ten_thousand_entries_with_problems_locate_them(studio: Path) -> None:
    """In a 10,000-entry JSON manifest a mistake is still reported with its line."""
    path = ten_thousand_entries(studio)
    data = json.loads(path.read_text())
    data["entries"][9876]["privacy_level"] = "PUBLIC"
    path.write_text(json.dumps(data, indent=1))
    problem = only_problem(path)
    assert problem.startswith("entries[9876].privacy_level: 'PUBLIC' is not one of")
    line = int(problem.split("(line ")[1].split(")")[0])
    assert '"privacy_level": "PUBLIC"' in path.read_text().splitlines()[line - 1]


def test_validation_sends_nothing(studio: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline validation, URL entries included, opens no network connection."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError("validation tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    manifest = load_manifest(write(studio, "manifest.yaml", SPEC_EXAMPLE), prober=BUILT_IN)
    assert len(manifest.entries) == 4
    assert attempts == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_entries_are_immutable(studio: Path) -> None:
    """Entries and the manifest are frozen values."""
    manifest = load_manifest(write(studio, "manifest.yaml", SPEC_EXAMPLE), prober=BUILT_IN)
    with pytest.raises(AttributeError):
        manifest.entries[0].user_id = "someone-else"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        manifest.entries = ()  # type: ignore[misc]


def test_trailing_newline_does_not_sneak_past_patterns(studio: Path) -> None:
    """A YAML block scalar leaves a newline: user_id 'u\\n' is refused, not used as an open_id."""
    path = write(
        studio,
        "m.yaml",
        """
        - user_id: |
            u
          video_path: videos/teaser.mp4
        """,
    )
    assert only_problem(path).startswith("[0].user_id: 'u\\n' is not valid here")


def test_the_same_mistake_in_many_entries_is_reported_for_each(studio: Path) -> None:
    """A wrong value repeated in three entries gives three problems (no memo hides them)."""
    path = write(
        studio,
        "m.yaml",
        """
        version: 1
        entries:
          - {id: a, user_id: u, video_path: videos/teaser.mp4, privacy_level: PUBLIC}
          - {id: b, user_id: u, video_path: videos/teaser.mp4, privacy_level: PUBLIC}
          - {id: c, user_id: u, video_path: videos/teaser.mp4, privacy_level: PUBLIC}
        """,
    )
    assert [problem.split(":")[0] for problem in problems(path)] == [
        "entries[0].privacy_level",
        "entries[1].privacy_level",
        "entries[2].privacy_level",
    ]
