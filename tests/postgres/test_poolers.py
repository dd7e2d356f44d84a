"""Workers behind PgBouncer, in session and in transaction mode: nothing of a shared run lives
in a server session (creator holds are rows, leases are data, no server-side prepared
statements), so a pooler that hands each transaction to any server session changes nothing —
every entry is posted exactly once and both workers' reports show the whole run.

PgBouncer is Debian's ``pgbouncer`` package; without it these tests skip saying so (and fail in
CI, like the PostgreSQL tests). It listens on a unix socket only, in front of the session's
throw-away server.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres.conftest import PgServer, shared_store
from tests.support.run_support import USERS, completed_by_digest, wait_until

pytestmark = pytest.mark.slow

_IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_PORT = 6432


@contextlib.contextmanager
def pgbouncer(server: PgServer, database_url: str, pool_mode: str) -> Iterator[str]:
    """PgBouncer in ``pool_mode``; yields the URL of ``database_url``'s database through it.

    In transaction mode two server sessions serve every connection of both workers (so their
    transactions land on each other's sessions); in session mode each client keeps one.
    """
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        if _IN_CI:
            pytest.fail("PgBouncer is required in CI (Debian's `pgbouncer`)", pytrace=False)
        pytest.skip("PgBouncer not available (install Debian's `pgbouncer` package)")
    base = Path(tempfile.mkdtemp(prefix="orchestrator-pgbouncer-"))
    (base / "users.txt").write_text('"orchestrator" ""\n')
    (base / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.socket_dir} user=orchestrator\n"
        "[pgbouncer]\n"
        "listen_addr =\n"
        f"listen_port = {_PORT}\n"
        f"unix_socket_dir = {base}\n"
        "auth_type = trust\n"
        f"auth_file = {base / 'users.txt'}\n"
        f"pool_mode = {pool_mode}\n"
        f"default_pool_size = {2 if pool_mode == 'transaction' else 60}\n"
        "max_client_conn = 200\n"
        f"logfile = {base / 'pgbouncer.log'}\n"
    )
    run_as: list[str] = []
    if os.geteuid() == 0:  # PgBouncer refuses to run as root, like PostgreSQL
        owner = pwd.getpwnam("postgres")
        for path in (base, *base.iterdir()):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    process = subprocess.Popen(
        [*run_as, binary, str(base / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until("PgBouncer's socket", (base / f".s.PGSQL.{_PORT}").exists, timeout=20)
        name = database_url.split("///")[1].split("?")[0]
        yield f"postgresql:///{name}?host={base}&port={_PORT}&user=orchestrator"
    finally:
        process.terminate()
        process.wait(20)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_two_workers_behind_pgbouncer_post_each_entry_once(
    tmp_path: Path, pg_server: PgServer, pg_url: str, pool_mode: str
) -> None:
    """Two workers through PgBouncer (two server sessions for all their connections): every
    entry completes once on the sandbox, both exit 0, both reports show every entry
    published, and the queue shows one claim per entry."""
    with (
        pgbouncer(pg_server, pg_url, pool_mode) as pooled,
        shared_store(tmp_path, pooled) as (served, _url),
    ):
        entries, digests = [], []
        for user in USERS:
            for n in range(3):
                path, digest = served.clip(f"{user}-{n}.mp4")
                digests.append(digest)
                entries.append({"id": f"{user}-{n}", "user_id": user, "video_path": path.name})
        manifest = served.manifest(entries)
        workers = [
            served.spawn(
                "run",
                str(manifest),
                "--jobs",
                "3",
                "--lease",
                "5",
                "--no-progress",
                "--report",
                f"w{n}.json",
                name=f"w{n}",
            )
            for n in (1, 2)
        ]
        codes = [worker.wait(timeout=120) for worker in workers]
        assert codes == [0, 0], [worker.stderr[-3000:] for worker in workers]
        assert completed_by_digest(served.sandbox) == Counter(digests)
        assert served.sandbox.violations() == []
        for n in (1, 2):
            report = json.loads((served.folder / f"w{n}.json").read_text())
            assert {entry["status"] for entry in report["entries"]} == {"published"}
