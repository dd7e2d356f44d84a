"""Security review of the surface: what an attacker on the machine or the network could touch.

Each point of the review has a test. Many were already tested where their module is; this file
holds only what was missing, and says where the rest lives:

- **OAuth callback** (``tiktok/oauth.py``): other paths 404, other methods 405, a wrong state
  refused while the login waits on, an error redirect ends it, stray requests counted, request
  lines never logged, a silent client cannot block it, a taken port is a ConfigError — all in
  ``tests/unit/test_oauth.py``. Here: it listens on 127.0.0.1 only (also for a ``localhost``
  redirect, and not on the machine's other addresses), refuses non-loopback redirect URIs,
  and takes exactly one redirect: a replay of the right one changes nothing.
- **Store permissions** (``store/db.py``, ``store/crypto.py``): home 0700 and ``state.db``
  0600 whatever the umask, the WAL companions 0600, a readable home / database / key file
  refused with the chmod that fixes it — ``tests/unit/test_store_db.py`` and
  ``test_store_crypto.py``. Here: the run lock is 0600, and a home that is a symbolic link to a
  folder others can read is refused.
- **Manifest paths to devices and FIFOs**: a FIFO video_path refused without blocking
  (``tests/unit/test_manifest.py``, ``test_media.py``), /dev/null refused by the prober; a
  device that never ends (/dev/zero) refused at once (``test_manifest.py``, added with the
  campaign); a manifest that *is* /dev/zero or /dev/urandom (``tests/fuzz``).
- **YAML tags that construct objects**: refused with their line (``test_manifest.py``), fuzzed
  (``tests/fuzz``). Here: such a tag is never executed, not even partly.
- **Report path that is a symbolic link**: the link is replaced, its target untouched
  (``tests/unit/test_report.py`` for the writer). Here: through the real ``run`` command, for
  the JSON, JUnit and Markdown paths at once.
- **Secrets on the command line**: here, no command has an option that would carry one.
"""

from __future__ import annotations

import http.client
import os
import socket
import stat
import uuid
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError, ManifestError, StorePermissionError
from orchestrator.manifest import load_manifest
from orchestrator.secret import Secret
from orchestrator.store.db import Database
from orchestrator.store.lock import RunLock
from orchestrator.tiktok.oauth import CallbackServer
from tests.support.run_support import Served

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _other_local_address() -> str | None:
    """A non-loopback address of this machine (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))  # TEST-NET: only picks the outgoing interface
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def _get(host: str, port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


# -- the OAuth callback ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_callback_listens_on_127_0_0_1_only(host: str) -> None:
    """The callback server's socket is bound to 127.0.0.1 (also for a `localhost` redirect),
    never to every interface; from another address of the machine nothing answers."""
    port = _free_port()
    with CallbackServer(f"http://{host}:{port}/callback/", Secret("s")) as server:
        bound = server._server.server_address if server._server else None
        assert bound == ("127.0.0.1", port)
        other = _other_local_address()
        if other is not None:
            with pytest.raises(ConnectionRefusedError), socket.create_connection((other, port), 2):
                pass


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://0.0.0.0:8765/callback/",
        "http://192.0.2.2:8765/callback/",
        "http://example.com:8765/callback/",
        "https://127.0.0.1:8765/callback/",
        "http://127.0.0.1/callback/",
    ],
)
def test_callback_refuses_a_redirect_that_is_not_http_loopback_with_a_port(
    redirect_uri: str,
) -> None:
    """A redirect URI on another host, on all interfaces, over https or without a port is a
    ConfigError before anything listens."""
    with pytest.raises(ConfigError), CallbackServer(redirect_uri, Secret("s")):
        pass


def test_callback_takes_one_redirect_a_replay_changes_nothing() -> None:
    """Once the right redirect has come, the same link again (a reload, a replay) or another
    right-state redirect with another code is answered "already done" and the code stays."""
    port = _free_port()
    with CallbackServer(f"http://127.0.0.1:{port}/callback/", Secret("right")) as server:
        assert _get("127.0.0.1", port, "/callback/?code=FIRST&state=right")[0] == 200
        status, page = _get("127.0.0.1", port, "/callback/?code=SECOND&state=right")
        assert status == 200
        assert "already" in page.lower()
        assert _get("127.0.0.1", port, "/callback/?error=access_denied&state=right")[0] == 200
        assert server.wait(1).code.reveal() == "FIRST"


# -- the store -------------------------------------------------------------------------------------


@posix_only
def test_run_lock_file_is_private(tmp_path: Path) -> None:
    """The run lock in the home is 0600, whatever the umask."""
    home = tmp_path / "home"
    Database.open(home).close()
    old = os.umask(0o022)
    try:
        with RunLock(home):
            assert stat.S_IMODE((home / "run.lock").stat().st_mode) == 0o600
    finally:
        os.umask(old)


@posix_only
def test_home_that_is_a_link_to_a_folder_others_can_read_is_refused(tmp_path: Path) -> None:
    """ORCHESTRATOR_HOME pointing (through a symbolic link) at a folder others can read is
    refused like the folder itself: the link does not hide its permissions."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)  # noqa: S103 - the permissive mode is what is under test
    link = tmp_path / "home-link"
    link.symlink_to(shared)
    with pytest.raises(StorePermissionError):
        Database.open(link)
    assert list(shared.iterdir()) == []


# -- the manifest ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system",
        "!!python/object/apply:subprocess.call",
        "!!python/object/new:os.system",
    ],
)
def test_yaml_tag_that_would_run_a_command_never_runs_it(tmp_path: Path, tag: str) -> None:
    """A YAML tag that would construct an object calling a command is refused, and the
    command never runs (the file it would create does not appear)."""
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    path = tmp_path / "m.yaml"
    path.write_text(
        f'version: 1\nentries:\n  - {tag} [["touch", "{marker}"]]\n  - {tag} ["touch {marker}"]\n'
    )
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert any("is not allowed" in problem for problem in caught.value.problems)
    assert not marker.exists()


# -- reports ---------------------------------------------------------------------------------------


def test_report_paths_that_are_links_elsewhere_are_replaced_not_written_through(
    served: Served, tmp_path: Path
) -> None:
    """`run --report/--junit/--markdown` at paths that are symbolic links to other files (a
    planted link to a file the user owns): each link becomes a regular file holding the report,
    and the files they pointed at are untouched."""
    clip, _ = served.clip("a.mp4")
    manifest = served.manifest([{"user_id": "sandbox-user-1", "video_path": clip.name}])
    victims = {}
    for name in ("report.json", "junit.xml", "summary.md"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("precious\n")
        (served.folder / name).symlink_to(victim)
        victims[name] = victim
    # In-process (the files written are the same; no interpreter to start).
    result = served.invoke(
        "run",
        str(manifest),
        "--report",
        "report.json",
        "--junit",
        "junit.xml",
        "--markdown",
        "summary.md",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    for name, victim in victims.items():
        written = served.folder / name
        assert not written.is_symlink()
        assert written.read_text() != "precious\n"
        assert victim.read_text() == "precious\n"


def test_no_command_takes_a_secret_on_its_command_line() -> None:
    """No option of any command carries a secret (it would show in `ps`): the client secret
    and the token key come from the environment only."""
    import click

    from orchestrator.cli import cli

    def options(command: click.Command) -> set[str]:
        found = {opt for param in command.params for opt in getattr(param, "opts", [])}
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                found |= options(sub)
        return found

    every = options(cli)
    assert "--home" in every  # the walk reached the options
    assert not [option for option in every if "secret" in option or "token-key" in option]
