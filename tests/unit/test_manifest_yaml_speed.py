"""YAML manifests: a valid one is read without composing a line map, and the fast reading gives
the same data, problems and lines as the full one (issue 14, item 10)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from orchestrator.manifest import check_manifest, documents
from orchestrator.media import Prober
from tests.support import media_factory as mf

BUILT_IN = Prober(ffprobe=None)

# Documents the fast reading must hand to the full one (or read to the same data).
TEXTS = [
    "version: 1\nentries: []\n",
    "a: 1\nb: 0x1f\nc: 1_000\nd: 1.5e3\ne: .inf\nf: ~\ng: null\nh: yes\ni: Off\nj: ''\n",
    "k: 2026-11-22T18:00:00Z\nl: 2026-11-22\nm: '12'\nn: \"x\\ty\"\no: |\n  block\n  text\n",
    "p: 1:20\nq: -0o17\nr: +12\ns: .NaN\nt: =\nu: <<\n",
    "[1, [2, [3, {a: b}]], {}]\n",
    "- x\n- - y\n  - z\n",
    "a: 1\na: 2\n",
    "1: a\n",
    "? [a]\n: b\n",
    "a: &x 1\nb: *x\n",
    "a: &m {b: 1}\nc:\n  <<: *m\n  d: 2\n",
    "c:\n  <<: {b: 1}\n  b: 2\n",
    "a: !!str 1\n",
    "a: !custom x\n",
    "a: 1\n---\nb: 2\n",
    "",
    "# only a comment\n",
    "a: [1, 2\n",
    "a: 'unterminated\n",
    "[" * 70 + "]" * 70 + "\n",
    "[" * 62 + "]" * 62 + "\n",
    "just some text\n",
    "--- 5\n...\n",
]


def full_reading(text: str) -> documents.Document:
    return documents._parse_yaml_with_lines(text, documents.Document())


@pytest.mark.parametrize("text", TEXTS)
def test_fast_yaml_reading_matches_the_full_one(text: str) -> None:
    """Data, problems and failure are those of the full reading, for plain and odd documents."""
    fast = documents._parse_yaml(text, documents.Document())
    full = full_reading(text)
    assert fast.failed == full.failed
    assert fast.problems == full.problems
    assert fast.data == full.data
    assert type(fast.data) is type(full.data)
    if not full.failed:
        assert repr(fast.data) == repr(full.data)  # 1 and True, 1.0 and 1 stay apart
        for path in [("a",), ("k",), (0,), (1, 1), ()]:
            assert fast.line_of(path) == full.line_of(path)


def test_fast_reading_refuses_what_it_cannot_vouch_for() -> None:
    """Anchors, tags, repeated or non-text keys, merges and several documents go to the full
    reading, which reports or expands them."""
    for text in [
        "a: 1\na: 2\n",
        "1: a\n",
        "a: &x 1\n",
        "<<: {a: 1}\n",
        "a: !!int 1\n",
        "a\n---\nb\n",
    ]:
        assert documents._FastYaml(text).build() is documents._FALLBACK, text
    assert documents._FastYaml("a: [1, b, {c: null}]\n").build() == {"a": [1, "b", {"c": None}]}


def studio(tmp_path: Path, text: str) -> Path:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "teaser.mp4").write_bytes(mf.mp4())
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_a_valid_yaml_manifest_composes_no_line_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Line numbers are only composed when a problem needs placing: a valid manifest never
    builds the node tree (the cost that made YAML three times slower than JSON)."""
    path = studio(
        tmp_path,
        """
        version: 1
        entries:
          - user_id: u
            video_path: videos/teaser.mp4
            tags: [daily, "#studio"]
        """,
    )

    def no_line_map(*_args: object) -> object:
        raise AssertionError("the line map was composed for a valid manifest")

    monkeypatch.setattr(documents, "_yaml_lines", no_line_map)
    monkeypatch.setattr(yaml.CSafeLoader, "get_single_node", no_line_map, raising=False)
    monkeypatch.setattr(yaml.SafeLoader, "get_single_node", no_line_map)
    found = check_manifest(path, prober=BUILT_IN)
    assert found.manifest is not None, found.problems
    assert found.manifest.entries[0].caption == "#daily #studio"


def test_a_problem_in_a_fast_read_manifest_still_names_its_line(tmp_path: Path) -> None:
    """A schema problem in a manifest the fast reading accepted is placed on its line."""
    path = studio(
        tmp_path,
        """
        version: 1
        entries:
          - user_id: u
            video_path: videos/teaser.mp4
          - user_id: v
            video_path: videos/teaser.mp4
            privacy_level: EVERYONE
        """,
    )
    found = check_manifest(path, prober=BUILT_IN)
    assert found.manifest is None
    [problem] = [str(problem) for problem in found.problems]
    assert problem.startswith("entries[1].privacy_level: ")
    assert "(line 7)" in problem


def test_a_file_or_moment_shared_by_many_entries_is_still_judged_for_each(tmp_path: Path) -> None:
    """What is read once per distinct file or publish_at (a 15 fps clip, a moment without a
    timezone) is still a problem on every entry naming it, each on its own line; a good file
    and moment give every entry the same media and time."""
    path = studio(
        tmp_path,
        """
        version: 1
        entries:
          - {id: a, user_id: u, video_path: videos/slow.mp4}
          - {id: b, user_id: u, video_path: videos/teaser.mp4, publish_at: 2026-11-22 18:00}
          - {id: c, user_id: u, video_path: videos/slow.mp4}
          - {id: d, user_id: u, video_path: videos/teaser.mp4, publish_at: 2026-11-22 18:00}
        """,
    )
    (tmp_path / "videos" / "slow.mp4").write_bytes(mf.mp4(tracks=(mf.Track(frames=60),)))
    found = check_manifest(path, prober=BUILT_IN)
    assert [(problem.location, problem.line) for problem in found.problems] == [
        ("entries[0].video_path", 3),
        ("entries[1].publish_at", 4),
        ("entries[2].video_path", 5),
        ("entries[3].publish_at", 6),
    ]
    assert "runs at 15 fps" in found.problems[2].message
    assert "has no timezone" in found.problems[3].message

    (tmp_path / "good").mkdir()
    good = studio(
        tmp_path / "good",
        """
        version: 1
        defaults: {publish_at: "2026-11-22T18:00:00+01:00"}
        entries:
          - {id: a, user_id: u, video_path: videos/teaser.mp4}
          - {id: b, user_id: v, video_path: ./videos/teaser.mp4}
          - {id: c, user_id: w, video_path: videos/teaser.mp4}
        """,
    )
    manifest = check_manifest(good, prober=BUILT_IN).manifest
    assert manifest is not None
    first, second, third = manifest.entries
    assert first.media == second.media == third.media
    assert first.media_info is not None
    assert first.media_info == third.media_info
    assert {entry.publish_at for entry in manifest.entries} == {
        datetime(2026, 11, 22, 17, 0, tzinfo=UTC)
    }
