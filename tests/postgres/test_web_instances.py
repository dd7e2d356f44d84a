"""Two ``serve`` instances on one PostgreSQL store share the API's posts exactly once.

The instances are real ``python -m orchestrator serve`` processes on one store (and one home,
as two services on one machine would be), against a sandbox served by this test process with
TikTok's rate windows enforced. Posts are sent to both instances' APIs; DELETEs sent to one
instance race the other's worker for posts just made there.
"""

from __future__ import annotations

import re
import socket
import threading
from collections import Counter

import requests

from orchestrator.clock import ManualClock, SystemClock
from orchestrator.secret import Secret
from orchestrator.store.postgres import PostgresDatabase
from orchestrator.store.web import ApiKeyStore, WebPostStore
from tests.support.run_support import USERS, Child, Served, completed_by_digest, wait_until

POSTS = 10
RACED = 6
ADMIN_PASSWORD = "correct horse battery staple"
_SERVING = re.compile(r"Serving on (http://127\.0\.0\.1:\d+)")
FINAL = ("published", "failed", "uncertain", "cancelled")


def _start(served: Served, name: str) -> tuple[Child, str]:
    served.env["ORCHESTRATOR_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    with socket.socket() as probe:  # a free port (serve takes no 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = served.spawn(
        "serve", "--port", str(port), "--upload-roots", str(served.folder), name=name
    )
    found: list[str] = []

    def listening() -> bool:
        match = _SERVING.search(child.stdout)
        if match:
            found.append(match.group(1))
        return bool(match) or child.process.poll() is not None

    wait_until(f"{name} to listen", listening, timeout=30)
    assert found, child.stderr
    return child, found[0]


def test_two_serve_instances_post_each_entry_exactly_once(shared: tuple[Served, str]) -> None:
    """10 posts across 3 creators, half sent to each of two `serve` instances on one store:
    each is published exactly once (byte-exact), both instances' workers drain, TikTok sees no
    violation; a DELETE sent to one instance while the other's worker claims the post either
    cancels it (never posted) or is refused with 409 (posted once), never both."""
    served, url = shared
    database = PostgresDatabase.open(Secret(url))
    try:
        key = ApiKeyStore(database, clock=SystemClock()).create("test").value
    finally:
        database.close()
    headers = {"Authorization": f"Bearer {key}"}
    first, first_url = _start(served, "first")
    second, second_url = _start(served, "second")
    try:
        digests: dict[str, str] = {}
        for number in range(POSTS):
            clip, digest = served.clip(f"clip-{number}.mp4")
            base = first_url if number % 2 == 0 else second_url
            response = requests.post(
                base + "/api/v1/posts",
                json={
                    "user_id": USERS[number % len(USERS)],
                    "video_path": str(clip),
                    "privacy_level": "SELF_ONLY",
                },
                headers=headers,
                timeout=30,
            )
            assert response.status_code == 202, response.text
            digests[response.json()["id"]] = digest

        raced: dict[str, tuple[str, int]] = {}
        for number in range(RACED):
            clip, digest = served.clip(f"raced-{number}.mp4")
            made = requests.post(
                first_url + "/api/v1/posts",
                json={
                    "user_id": USERS[number % len(USERS)],
                    "video_path": str(clip),
                    "privacy_level": "SELF_ONLY",
                },
                headers=headers,
                timeout=30,
            )
            assert made.status_code == 202, made.text
            post_id = made.json()["id"]
            deleted = requests.delete(
                f"{second_url}/api/v1/posts/{post_id}", headers=headers, timeout=30
            )
            assert deleted.status_code in (200, 409), deleted.text
            raced[post_id] = (digest, deleted.status_code)

        states: dict[str, str] = {}

        def all_final() -> bool:
            for post_id in [*digests, *raced]:
                if states.get(post_id) in FINAL:
                    continue
                answer = requests.get(
                    f"{first_url}/api/v1/posts/{post_id}", headers=headers, timeout=10
                )
                states[post_id] = str(answer.json()["state"])
            return all(state in FINAL for state in states.values())

        wait_until("every post to be final", all_final, timeout=180)
    finally:
        for child in (first, second):
            child.process.terminate()
        for child in (first, second):
            child.wait()

    completed = completed_by_digest(served.sandbox)
    assert {post_id: states[post_id] for post_id in digests} == dict.fromkeys(digests, "published")
    for digest in digests.values():
        assert completed[digest] == 1, completed
    for post_id, (digest, status) in raced.items():
        if status == 200:
            assert states[post_id] == "cancelled"
            assert completed[digest] == 0
        else:
            assert states[post_id] == "published"
            assert completed[digest] == 1
    assert sum(completed.values()) == POSTS + sum(status == 409 for _, status in raced.values())
    assert served.sandbox.violations() == []
    # Both instances ran posts: each claims what its own API queued before the other polls.
    database = PostgresDatabase.open(Secret(url))
    try:
        runs = database.fetch_all(
            "SELECT DISTINCT run_id FROM work_queue WHERE run_id LIKE 'web-%'"
        )
    finally:
        database.close()
    assert len({str(row["run_id"]).split("-")[1] for row in runs}) == 2


def _race(api: WebPostStore, worker: WebPostStore, post_id: str) -> dict[str, bool]:
    """A cancel and a claim of ``post_id`` started at once; whether each won."""
    barrier = threading.Barrier(2)
    won: dict[str, bool] = {}

    def cancel() -> None:
        barrier.wait(30)
        won["cancel"] = api.cancel(post_id)

    def claim() -> None:
        barrier.wait(30)
        won["claim"] = worker.claim(post_id, "other-instance", lease=60)

    threads = [threading.Thread(target=cancel), threading.Thread(target=claim)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return won


def test_a_cancel_racing_a_claim_on_postgres_wins_or_loses_whole(pg_url: str) -> None:
    """A DELETE and a worker's claim on one post, from two connections at once, 30 times:
    exactly one of them wins each time, and the post's state says which."""
    clock = ManualClock()
    databases = [PostgresDatabase.open(Secret(pg_url)) for _ in range(2)]
    try:
        api, worker = (WebPostStore(database, clock=clock) for database in databases)
        outcomes: Counter[str] = Counter()
        for number in range(30):
            post, _ = api.add(f"key-{number}", body_digest="d", entry='{"user_id": "a"}')
            won = _race(api, worker, post.id)
            assert won["cancel"] != won["claim"], won
            found = api.get(post.id)
            assert found is not None
            assert str(found.state) == ("cancelled" if won["cancel"] else "started")
            outcomes["cancel" if won["cancel"] else "claim"] += 1
        assert sum(outcomes.values()) == 30
    finally:
        for database in databases:
            database.close()
