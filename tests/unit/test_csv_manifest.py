"""CSV manifests: what a spreadsheet exports reads as the same entries a YAML manifest gives,
and every problem is placed by row and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.manifest import Mode, PrivacyLevel, check_manifest
from orchestrator.manifest.csvdoc import column_letter, detect_separator
from tests.support import media_factory as mf

# Written by hand as LibreOffice/Excel export it in a locale whose decimal mark is the comma:
# a byte-order mark, semicolons, CRLF line ends, quoted cells holding a separator, quotes and a
# line break, a blank row, TRUE/FALSE flags.
SPREADSHEET_EXPORT = (
    b"\xef\xbb\xbfid;user_id;video_path;description;tags;privacy_level;disable_comment;"
    b"video_cover_timestamp_ms\r\n"
    b'launch;sandbox-user-1;a.mp4;"Hello; world, ""quoted""";launch, #new demo;'
    b"PUBLIC_TO_EVERYONE;TRUE;1500\r\n"
    b";;;;;;;\r\n"
    b'two-lines;sandbox-user-2;b.mp4;"first line\r\nsecond line";;;FALSE;\r\n'
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "a.mp4").write_bytes(mf.mp4())
    (tmp_path / "b.mp4").write_bytes(mf.mp4(mdat_bytes=4096))
    return tmp_path


def test_spreadsheet_export_reads_every_cell_as_its_type(folder: Path) -> None:
    """BOM, semicolons, quoted separators and quotes, CRLF and a blank row: two entries, typed."""
    path = folder / "posts.csv"
    path.write_bytes(SPREADSHEET_EXPORT)
    checked = check_manifest(path)
    assert checked.problems == ()
    assert checked.manifest is not None
    first, second = checked.manifest.entries
    assert first.id == "launch"
    assert first.caption == 'Hello; world, "quoted" #launch #new #demo'
    assert first.privacy_level is PrivacyLevel.PUBLIC_TO_EVERYONE
    assert first.disable_comment is True
    assert first.video_cover_timestamp_ms == 1500
    assert second.caption == "first line\nsecond line"
    # Empty cells are "not set": the built-in defaults apply.
    assert second.privacy_level is PrivacyLevel.SELF_ONLY
    assert second.mode is Mode.DIRECT
    assert second.disable_comment is False


def test_every_problem_names_its_row_and_column(folder: Path) -> None:
    """A bad flag, an unknown privacy level, a bad number, a missing file and an unknown
    column: each problem says row N, column name (letter), and the fix."""
    path = folder / "posts.csv"
    path.write_text(
        "user_id,video_path,privacy_levle,disable_duet,video_cover_timestamp_ms,mode\n"
        "u1,a.mp4,,maybe,,\n"
        "u1,missing.mp4,,,1.5s,\n"
        "u2,b.mp4,,,,publish\n",
        encoding="utf-8",
    )
    shown = [str(problem) for problem in check_manifest(path).problems]
    assert any(
        text.startswith("row 1, column C: unknown field 'privacy_levle'")
        and "did you mean 'privacy_level'" in text
        for text in shown
    ), shown
    assert any(
        text.startswith("row 2, column disable_duet (D): 'maybe' is not true or false")
        for text in shown
    ), shown
    assert any(
        text.startswith("row 3, column video_cover_timestamp_ms (E): '1.5s' is not a whole")
        for text in shown
    ), shown
    assert any(text.startswith("row 3, column video_path (B):") for text in shown), shown
    assert any(
        text.startswith("row 4, column mode (F): 'publish' is not one of") for text in shown
    ), shown
    assert all(text.startswith("row ") for text in shown), shown


def test_a_missing_user_id_column_is_one_problem(folder: Path) -> None:
    """A header without user_id is reported once, at row 1, not once per row."""
    path = folder / "posts.csv"
    path.write_text("video_path\na.mp4\nb.mp4\n", encoding="utf-8")
    (problem,) = check_manifest(path).problems
    assert str(problem).startswith("row 1: has no user_id column")


def test_a_value_under_no_header_and_broken_quoting_are_placed(folder: Path) -> None:
    """A cell right of the last header, and a quote left open, name their row."""
    path = folder / "posts.csv"
    path.write_text("user_id,video_path\nu1,a.mp4,extra\n", encoding="utf-8")
    (problem,) = check_manifest(path).problems
    assert str(problem).startswith("row 2, column C: 'extra' is under no header")
    path.write_text('user_id,video_path\nu1,"a.mp4\n', encoding="utf-8")
    (problem,) = check_manifest(path).problems
    assert str(problem).startswith("row 2: is not valid CSV")


def test_separator_is_the_one_the_header_uses() -> None:
    """Comma, semicolon or tab, whichever the header row has most; a single column is fine."""
    assert detect_separator("user_id;video_path;tags\nu,1;a.mp4;x\n") == ";"
    assert detect_separator("user_id,video_path\n") == ","
    assert detect_separator("user_id\tvideo_path\n") == "\t"
    assert detect_separator("user_id\n") == ","


def test_column_letters_are_a_spreadsheets() -> None:
    """0 is A, 25 Z, 26 AA, 27 AB, 701 ZZ, 702 AAA."""
    assert [column_letter(i) for i in (0, 25, 26, 27, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AB",
        "ZZ",
        "AAA",
    ]
