"""A throw-away PostgreSQL server for the test session, and a fresh database per test.

The server is the machine's own PostgreSQL (Debian's ``postgresql`` package: the binaries live in
``/usr/lib/postgresql/<version>/bin``), started in a temporary folder on a unix socket only (no
TCP port), with fsync off (the tests kill workers, not the machine), and stopped when the session
ends. PostgreSQL refuses to run as root, so under root (CI) it runs as the ``postgres`` system
user. Where PostgreSQL is absent the tests skip saying so — except in CI (``CI=true``), where the
absence is a failure: CI installs it, and a silent skip would hide the feature going untested.

Every test here also needs the ``postgres`` extra (psycopg), also those that need no server (a
malformed URL's message): without it they skip with that reason, and fail in CI the same way,
so ``pip install -e '.[test]'`` then ``python -m pytest`` passes on a fresh machine.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.clock import SystemClock
from orchestrator.config import load_settings
from orchestrator.sandbox import SandboxConfig
from tests.support.run_support import USERS, Served, serve, sign_in

_IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_SERVER_USER = "postgres"
_SUPERUSER = "orchestrator"


def _find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


@dataclass(frozen=True)
class PgServer:
    """A running throw-away server: a URL per database."""

    socket_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql:///{database}?host={self.socket_dir}&user={_SUPERUSER}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _unavailable(reason: str) -> None:
    if _IN_CI:
        pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


def _psycopg_missing() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return True
    return False


@pytest.fixture(autouse=True)
def _needs_the_postgres_extra() -> None:
    """Skip (fail in CI) every PostgreSQL test when the psycopg driver is not installed."""
    if _psycopg_missing():
        _unavailable("the psycopg driver is not installed (pip install -e '.[postgres]')")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """Start a private PostgreSQL server for the session (skip, or fail in CI, without one)."""
    initdb, pg_ctl = _find_bin("initdb"), _find_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        _unavailable("initdb/pg_ctl not found (install Debian's `postgresql` package)")
    if _psycopg_missing():
        _unavailable("the psycopg driver is not installed (pip install -e '.[postgres]')")
    assert initdb is not None
    assert pg_ctl is not None
    run_as: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(_SERVER_USER)
        except KeyError:
            _unavailable(f"running as root and there is no `{_SERVER_USER}` user to run it as")
        runuser = shutil.which("runuser")
        if runuser is None:
            _unavailable("running as root and `runuser` is missing")
        assert owner is not None
        assert runuser is not None
        run_as = [runuser, "-u", _SERVER_USER, "--"]
    base = Path(tempfile.mkdtemp(prefix="orchestrator-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    if owner is not None:
        for path in (base, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    log = base / "server.log"
    started = False
    try:
        subprocess.run(
            [
                *run_as,
                initdb,
                "-D",
                str(data),
                "-U",
                _SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = (
            f"-k {sockets} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        started = True
        yield PgServer(sockets)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip()[-500:]
        with contextlib.suppress(OSError):
            detail += " | " + log.read_text(errors="replace")[-500:]
        _unavailable(f"the server did not start: {detail}")
    finally:
        if started:
            subprocess.run(
                [*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return pg_server.create_database()


@contextlib.contextmanager
def shared_store(tmp_path: Path, url: str) -> Iterator[tuple[Served, str]]:
    """A served sandbox whose users are signed in to the PostgreSQL store at ``url``; the
    workers' environment points at that store with one token key."""
    config = SandboxConfig(processing_polls=0, daily_post_cap=100, pending_inbox_cap=100)
    with serve(tmp_path, config) as served:
        key = base64.b64encode(os.urandom(32)).decode()
        settings = load_settings(
            environ={"ORCHESTRATOR_TOKEN_KEY": key},
            home=served.home,
            store=url,
            api_base=served.sandbox.base_url,
            auth_url=served.sandbox.auth_url,
        )
        sign_in(settings, served.sandbox, SystemClock(), USERS)
        served.env.update({"ORCHESTRATOR_STORE": url, "ORCHESTRATOR_TOKEN_KEY": key})
        yield served, url


@pytest.fixture
def shared(tmp_path: Path, pg_url: str) -> Iterator[tuple[Served, str]]:
    """A sandbox and a fresh PostgreSQL store shared by the workers (see shared_store)."""
    with shared_store(tmp_path, pg_url) as opened:
        yield opened
