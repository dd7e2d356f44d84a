"""`manifest convert` and `manifest new`: spreadsheets and folders in, through the real
command; and a spreadsheet export that validates and runs on the sandbox."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.manifest import check_manifest
from orchestrator.manifest.convert import entries_of, read_manifest_data
from orchestrator.manifest.csvdoc import entry_field_types
from tests.support import media_factory as mf
from tests.support.run_support import Served
from tests.unit.test_csv_manifest import SPREADSHEET_EXPORT

EVERY_FIELD = """
version: 1
defaults:
  privacy_level: FOLLOWER_OF_CREATOR
  tags: ["#default"]
entries:
  - id: video-1
    user_id: creator-a
    mode: direct
    privacy_level: MUTUAL_FOLLOW_FRIENDS
    disable_comment: true
    disable_duet: false
    disable_stitch: true
    is_aigc: true
    brand_content_toggle: false
    brand_organic_toggle: true
    video_cover_timestamp_ms: 1500
    publish_at: "2026-12-14T18:00:00+01:00"
    review: creator
    video_path: videos/a.mp4
    description: "Line one; with, separators \\"and quotes\\"\\nline two"
    tags: ["#launch", "new"]
  - id: photos-1
    user_id: creator-b
    auto_add_music: true
    photo_urls: ["https://m.example.com/1.jpg", "https://m.example.com/a,b/2.jpg"]
    photo_cover_index: 1
    title: "Mood board"
    description: "Colours"
  - id: url-1
    user_id: creator-b
    mode: inbox
    video_url: https://m.example.com/v.mp4
"""


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(mf.mp4())
    (tmp_path / "m.yaml").write_text(textwrap.dedent(EVERY_FIELD), encoding="utf-8")
    return tmp_path


def test_convert_round_trips_every_field_through_csv_json_and_yaml(project: Path) -> None:
    """YAML → CSV → JSON → YAML keeps every entry field of the schema, value and type."""
    original = entries_of(read_manifest_data(project / "m.yaml"))
    used = {name for entry in original for name in entry}
    assert used == set(entry_field_types()), "the fixture must set every field"
    for source, target in (("m.yaml", "m.csv"), ("m.csv", "m.json"), ("m.json", "back.yaml")):
        result = invoke("manifest", "convert", str(project / source), str(project / target))
        assert result.exit_code == 0, result.output
        assert entries_of(read_manifest_data(project / target)) == original, target
    csv_entries = check_manifest(project / "m.csv").manifest
    yaml_entries = check_manifest(project / "m.yaml").manifest
    assert csv_entries is not None
    assert yaml_entries is not None
    assert [e.caption for e in csv_entries.entries] == [e.caption for e in yaml_entries.entries]


def test_convert_refuses_to_overwrite_without_force(project: Path) -> None:
    """An existing output is left alone (exit 2, hint --force); --force replaces it."""
    target = project / "out.json"
    target.write_text("keep me", encoding="utf-8")
    result = invoke("manifest", "convert", str(project / "m.yaml"), str(target))
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert "--force" in result.output
    assert target.read_text(encoding="utf-8") == "keep me"
    result = invoke("manifest", "convert", "--force", str(project / "m.yaml"), str(target))
    assert result.exit_code == 0
    assert read_manifest_data(target)["entries"][0]["id"] == "video-1"


def test_convert_to_another_folder_keeps_video_paths_pointing_at_the_files(
    project: Path,
) -> None:
    """A relative video_path is rewritten for the new file's folder, so it still validates."""
    (project / "out").mkdir()
    target = project / "out" / "m.csv"
    assert invoke("manifest", "convert", str(project / "m.yaml"), str(target)).exit_code == 0
    assert read_manifest_data(target)["entries"][0]["video_path"] == "../videos/a.mp4"
    assert check_manifest(target).problems == ()


def test_convert_refuses_a_source_with_problems(project: Path) -> None:
    """A CSV cell that is not its type is listed with row and column; nothing is written."""
    source = project / "bad.csv"
    source.write_text("user_id,video_url,is_aigc\nu,https://x.example/v.mp4,perhaps\n")
    result = invoke("manifest", "convert", str(source), str(project / "out.yaml"))
    assert result.exit_code == 2
    assert "row 2, column is_aigc (C): 'perhaps' is not true or false" in result.output
    assert not (project / "out.yaml").exists()


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    (folder / "week 1").mkdir(parents=True)
    (folder / "intro.mp4").write_bytes(mf.mp4())
    (folder / "intro.txt").write_text("Hello from the intro\n", encoding="utf-8")
    (folder / "week 1" / "tour.mov").write_bytes(mf.mp4(mdat_bytes=3000))
    (folder / "week 1" / "tour.yaml").write_text(
        "privacy_level: PUBLIC_TO_EVERYONE\ntags: [studio, '#bts']\ndisable_comment: true\n"
    )
    (folder / "notes.mp4").write_text("not a video at all")  # a name is not a video
    (folder / "raw.bin").write_bytes(mf.webm())  # but bytes are
    return folder


def test_new_makes_a_valid_manifest_from_a_folder(clips: Path) -> None:
    """Videos found by their bytes, captions and fields from sidecars, ids from paths."""
    result = invoke("manifest", "new", str(clips), "--user", "creator-a")
    assert result.exit_code == 0, result.output
    assert "notes.mp4 is not a video" in result.output
    data = yaml.safe_load((clips / "manifest.yaml").read_text(encoding="utf-8"))
    by_id = {entry["id"]: entry for entry in data["entries"]}
    assert set(by_id) == {"intro.mp4", "raw.bin", "week-1-tour.mov"}
    assert by_id["intro.mp4"]["description"] == "Hello from the intro"
    assert by_id["week-1-tour.mov"]["privacy_level"] == "PUBLIC_TO_EVERYONE"
    assert by_id["week-1-tour.mov"]["tags"] == ["studio", "#bts"]
    assert by_id["week-1-tour.mov"]["video_path"] == "week 1/tour.mov"
    assert all(entry["user_id"] == "creator-a" for entry in data["entries"])
    assert check_manifest(clips / "manifest.yaml").problems == ()


def test_rerun_adds_only_new_videos_and_keeps_ids_and_edits(clips: Path) -> None:
    """A second `manifest new` keeps existing entries as edited and appends the new video."""
    assert invoke("manifest", "new", str(clips), "--user", "creator-a").exit_code == 0
    path = clips / "manifest.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["entries"][0]["description"] = "edited by hand"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    (clips / "outro.mp4").write_bytes(mf.mp4(mdat_bytes=5000))
    result = invoke("manifest", "new", str(clips), "--user", "creator-a")
    assert "1 new, 3 kept" in result.output
    again = yaml.safe_load(path.read_text(encoding="utf-8"))["entries"]
    assert again[:3] == data["entries"]
    assert again[3]["id"] == "outro.mp4"


def test_schedule_keeps_the_local_time_across_dst_and_the_per_day_limit(clips: Path) -> None:
    """`--every 1d --at 18:00 --tz Europe/Berlin` over the March DST change, 2 a day."""
    for name in ("a", "b", "c"):
        (clips / f"{name}.mp4").write_bytes(mf.mp4(mdat_bytes=6000 + ord(name)))
    out = clips / "plan.json"
    result = invoke(
        "manifest", "new", str(clips), "--user", "creator-a", "-o", str(out),
        "--start", "2027-03-27", "--every", "1d", "--at", "18:00", "--tz", "Europe/Berlin",
        "--per-day", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    times = [entry["publish_at"] for entry in read_manifest_data(out)["entries"]]
    assert times == [
        "2027-03-27T18:00:00+01:00",
        "2027-03-27T18:00:00+01:00",
        "2027-03-28T18:00:00+02:00",  # after the change: still 18:00 in Berlin
        "2027-03-28T18:00:00+02:00",
        "2027-03-29T18:00:00+02:00",
        "2027-03-29T18:00:00+02:00",
    ]
    (clips / "late.mp4").write_bytes(mf.mp4(mdat_bytes=7000))
    invoke(
        "manifest", "new", str(clips), "--user", "creator-a", "-o", str(out),
        "--start", "2027-03-27", "--tz", "Europe/Berlin", "--per-day", "2",
    )  # fmt: skip
    assert read_manifest_data(out)["entries"][-1]["publish_at"] == "2027-03-30T18:00:00+02:00"


def test_new_refuses_a_bad_sidecar_and_a_per_day_over_the_cap(clips: Path) -> None:
    """A sidecar field of the wrong value names the sidecar and field; nothing is written;
    --per-day above TikTok's daily cap is refused."""
    (clips / "intro.json").write_text('{"privacy_level": "PUBLIK", "video_path": "x.mp4"}')
    result = invoke("manifest", "new", str(clips), "--user", "creator-a")
    assert result.exit_code == 2
    assert "intro.json: privacy_level: 'PUBLIK' is not one of" in result.output
    assert "intro.json: video_path: cannot be set here" in result.output
    assert not (clips / "manifest.yaml").exists()
    result = invoke(
        "manifest", "new", str(clips), "--user", "u", "--start", "2027-01-01", "--per-day", "16"
    )
    assert result.exit_code == 2
    assert "over the direct cap of 15" in result.output


def test_spreadsheet_export_runs_on_the_sandbox(served: Served) -> None:
    """The hand-written export (BOM, semicolons, quoted commas, CRLF) posts both entries."""
    # A served sandbox (users signed in, the first status answer final) rather than `run
    # --sandbox`, whose simulator answers PROCESSING first: a 2 s poll wait this test is not about.
    (served.folder / "a.mp4").write_bytes(mf.mp4())
    (served.folder / "b.mp4").write_bytes(mf.mp4(mdat_bytes=4096))
    (served.folder / "posts.csv").write_bytes(SPREADSHEET_EXPORT)
    result = served.invoke("run", "posts.csv", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "2 entries: 2 published" in result.output
