"""What the benchmarks share: the machine line, sample videos, sandbox users, seeded homes.

Not a benchmark itself. Everything here is set-up that stays outside the timed sections: it
makes valid MP4 files of any size (a real ``ftyp``/``moov`` head and an ``mdat`` running to the
end, so validation and probing pass), a home whose token store holds sandbox users' tokens (as
``auth login`` would have left it), and JSON manifests.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from orchestrator.clock import Clock  # noqa: E402
from orchestrator.config import Settings  # noqa: E402
from orchestrator.sandbox import SandboxConfig, SandboxUser  # noqa: E402
from orchestrator.secret import Secret  # noqa: E402
from orchestrator.store.tokens import TokenStore  # noqa: E402
from orchestrator.tiktok.oauth import TokenGrant  # noqa: E402
from tests import media_factory  # noqa: E402

MIB = 1024 * 1024


def cpu_model() -> str:
    """The CPU's model name (Linux), or the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def machine_line() -> str:
    """One line naming the machine, for every benchmark's output."""
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def child_env(**extra: str) -> dict[str, str]:
    """A clean environment for child processes: this worktree first on the path."""
    env = {"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update(extra)
    return env


# -- videos ------------------------------------------------------------------------------------


def mp4_head(*, duration_s: float = 30.0, tag: int = 0) -> bytes:
    """The head of an MP4 whose ``mdat`` runs to the end of the file (any length may follow).

    ``tag`` varies the head's bytes (the stand-in media data) so files are distinct.
    """
    track = media_factory.Track(duration_s=duration_s, frames=round(30 * duration_s))
    return media_factory.mp4(
        tracks=(track,), duration_s=duration_s, mdat_bytes=16 + tag, mdat_to_end=True
    )


def write_sparse_mp4(path: Path, size: int) -> Path:
    """A valid MP4 of ``size`` bytes, all zeros after its head and sparse (no disk needed)."""
    head = mp4_head()
    with path.open("wb") as out:
        out.write(head)
        out.truncate(size)
    return path


def write_small_mp4(path: Path, *, tag: int, payload: int = 4096) -> Path:
    """A small distinct MP4 (``payload`` bytes of media data after its head)."""
    head = mp4_head(duration_s=5.0, tag=tag)
    path.write_bytes(head + os.urandom(payload))
    return path


# -- sandbox users and homes ------------------------------------------------------------------


def sandbox_users(count: int) -> tuple[SandboxUser, ...]:
    """``count`` public sandbox accounts named ``bench-user-NN``."""
    return tuple(
        SandboxUser(open_id=f"bench-user-{index:02d}", display_name=f"Bench {index}")
        for index in range(count)
    )


def bench_config(users: Sequence[SandboxUser], **changes: Any) -> SandboxConfig:
    """A sandbox for benchmarks: no rate windows, no caps in the way, terminal on first poll,
    tokens that outlive any run (so no refresh happens inside a timed section)."""
    settings: dict[str, Any] = {
        "users": tuple(users),
        "rate_limits": False,
        "processing_polls": 0,
        "daily_post_cap": 1_000_000,
        "pending_inbox_cap": 1_000_000,
        "access_token_ttl": 30 * 86400,
    }
    settings.update(changes)
    return SandboxConfig(**settings)


def grant_of(response: dict[str, Any], *, now: float) -> TokenGrant:
    """A sandbox token response as the grant ``auth login`` would have stored."""
    return TokenGrant(
        open_id=str(response["open_id"]),
        access_token=Secret(str(response["access_token"])),
        access_expires_at=now + float(response["expires_in"]),
        refresh_token=Secret(str(response["refresh_token"])),
        refresh_expires_at=now + float(response["refresh_expires_in"]),
        scopes=frozenset(str(response["scope"]).split(",")),
    )


def seeded_settings(
    home: Path,
    *,
    api_base: str,
    client_key: str,
    client_secret: str,
    token_responses: Iterable[dict[str, Any]],
    clock: Clock,
) -> Settings:
    """Settings for a fresh ``home`` whose token store holds the given users' tokens."""
    settings = Settings(
        home=home,
        api_base=api_base,
        auth_url=api_base + "/v2/auth/authorize/",
        client_key=client_key,
        client_secret=Secret(client_secret),
    )
    now = clock.time()
    with TokenStore.open(settings, clock=clock) as store:
        store.save_grants([(grant_of(response, now=now), None) for response in token_responses])
    return settings


def write_manifest(path: Path, entries: list[dict[str, Any]]) -> Path:
    """A version 1 JSON manifest of ``entries`` (direct posts, SELF_ONLY by default)."""
    document = {
        "version": 1,
        "defaults": {"mode": "direct", "privacy_level": "SELF_ONLY"},
        "entries": entries,
    }
    path.write_text(json.dumps(document, indent=1))
    return path


# -- the sandbox in its own process ----------------------------------------------------------

_SANDBOX_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from harness import bench_config, sandbox_users
from orchestrator.sandbox import ENDPOINTS, Fault, Sandbox
users = sandbox_users(int(sys.argv[2]))
latency = float(sys.argv[3])
with Sandbox(bench_config(users)) as sb:
    if latency:  # every answer of every endpoint waits: a network round trip on loopback
        for endpoint in ENDPOINTS:
            sb.schedule(Fault(endpoint=endpoint, call=None, kind="delay", seconds=latency))
    print(json.dumps({
        "base_url": sb.base_url, "client_key": sb.client_key,
        "client_secret": sb.client_secret,
        "tokens": [sb.grant_tokens(u.open_id) for u in users],
    }), flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
    print(json.dumps({"errors": sb.server_errors(), "violations": sb.violations(),
        "publishes": [{"id": p.publish_id, "bytes": p.bytes_received, "completed": p.completed}
                      for p in sb.publishes()]}), flush=True)
"""


class SandboxProcess:
    """The sandbox (``bench_config``) serving from a child process, so its CPU work does not
    share the benchmark's interpreter. ``latency`` delays every answer of every endpoint."""

    def __init__(self, users: int, *, latency: float = 0.0) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-c", _SANDBOX_CHILD, str(Path(__file__).parent), str(users),
             str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=child_env(),
        )  # fmt: skip
        assert self._child.stdout is not None
        hello = json.loads(self._child.stdout.readline())
        self.base_url: str = hello["base_url"]
        self.client_key: str = hello["client_key"]
        self.client_secret: str = hello["client_secret"]
        self.tokens: list[dict[str, Any]] = hello["tokens"]
        self.final: dict[str, Any] = {}

    def settings(self, home: Path, clock: Clock) -> Settings:
        """Settings for a fresh ``home`` holding every sandbox user's tokens."""
        return seeded_settings(
            home,
            api_base=self.base_url,
            client_key=self.client_key,
            client_secret=self.client_secret,
            token_responses=self.tokens,
            clock=clock,
        )

    def close(self) -> dict[str, Any]:
        """Stop the sandbox; what it received (publishes, errors, violations)."""
        if self._child.poll() is None:
            assert self._child.stdin is not None
            assert self._child.stdout is not None
            self._child.stdin.close()
            self.final = json.loads(self._child.stdout.readline() or "{}")
            self._child.wait(timeout=60)
        return self.final

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
