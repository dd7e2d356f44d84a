"""``serve`` on a PostgreSQL store with a home that does not exist yet: the app creates the home
private, so the worker's first manifest (written under it) is not refused by the run."""

from __future__ import annotations

import stat
from pathlib import Path

from orchestrator.clock import SystemClock
from orchestrator.config import load_settings, load_web_config
from orchestrator.store.tokens import TokenStore
from orchestrator.web import create_app


def test_a_fresh_home_on_a_postgres_store_is_made_private(
    pg_url: str,
    tmp_path: Path,
) -> None:
    home = tmp_path / "fresh" / "home"
    settings = load_settings(
        environ={"ORCHESTRATOR_TOKEN_KEY": "A" * 43 + "="}, home=home, store=pg_url
    )
    with TokenStore.open(settings, clock=SystemClock()) as store:
        assert not home.exists()  # a PostgreSQL store creates nothing under the home
        config = load_web_config(environ={"ORCHESTRATOR_ADMIN_PASSWORD": "x" * 16})
        create_app(config, settings=settings, clock=SystemClock(), token_store=store)
        # Before, the first upload's folder made the home with the umask's 0755, and every
        # run of the worker then refused it ("others can read it").
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
