"""One process of the two-process refresh test: ``refresh_worker.py OPEN_ID GO_FILE``.

Opens the store named by the environment (as any orchestrator process would), prints
``ready``, waits for GO_FILE to appear (so two workers ask at the same moment), asks the token
provider for OPEN_ID's access token, and prints the token's SHA-256 (never the token).
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
from pathlib import Path

from orchestrator.clock import SystemClock
from orchestrator.config import load_settings
from orchestrator.store.tokens import TokenProvider, TokenStore
from orchestrator.tiktok.oauth import OAuthClient
from orchestrator.transport import HttpTransport

_GO_WAIT = 30.0


def main(open_id: str, go_file: Path) -> int:
    settings = load_settings()
    clock = SystemClock()
    with (
        contextlib.closing(HttpTransport()) as transport,
        TokenStore.open(settings, clock=clock) as store,
    ):
        provider = TokenProvider(
            store, OAuthClient.from_settings(settings, transport, clock), clock=clock
        )
        print("ready", flush=True)
        deadline = time.monotonic() + _GO_WAIT
        while not go_file.exists():
            if time.monotonic() > deadline:
                return 3
            time.sleep(0.005)
        token = provider.access_token(open_id)
    print(hashlib.sha256(token.reveal().encode()).hexdigest(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
