"""Fuzzing state.db with random byte flips: every command on the damaged file exits with a
documented code and a message, never a traceback (--all: 20 examples; FUZZ_EXAMPLES=500 for a
longer hunt)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli import cli
from orchestrator.store.db import DB_FILENAME
from tests.cli.test_damaged_store import READ_ONLY_COMMANDS, seeded_home
from tests.support.tiers import fuzz_examples

FUZZ = settings(
    max_examples=fuzz_examples(20),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_flips = st.lists(
    st.tuples(st.floats(min_value=0, max_value=1, exclude_max=True), st.integers(1, 255)),
    min_size=1,
    max_size=4,
)


@pytest.mark.slow  # every example runs every read-only command on a damaged copy
@FUZZ
@given(flips=_flips)
def test_flipped_bytes_in_state_db_give_only_documented_errors(
    tmp_path: Path, flips: list[tuple[float, int]]
) -> None:
    """Whatever bytes are flipped, each command exits 0, 1 or 2 with no traceback."""
    seed = tmp_path / "seed"
    if not seed.exists():
        seed.mkdir()
        seeded_home(seed / "home", seed)
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    home = work / "home"
    shutil.copytree(seed / "home", home)
    path = home / DB_FILENAME
    raw = bytearray(path.read_bytes())
    for where, mask in flips:
        raw[int(where * len(raw))] ^= mask
    path.write_bytes(bytes(raw))
    for args in (*READ_ONLY_COMMANDS, ("auth", "import", str(seed / "user_tokens.json"))):
        result = CliRunner().invoke(cli, ["--home", str(home), *args])
        assert isinstance(result.exception, SystemExit | None), (args, repr(result.exception))
        assert result.exit_code in (0, 1, 2), (args, result.output)
        assert "Traceback" not in result.output
