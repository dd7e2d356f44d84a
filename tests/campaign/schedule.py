"""A fault schedule, generated from a seed: who posts what, and what goes wrong when.

Pure data and a generator: :func:`generate` turns a seed into a :class:`Schedule` (users,
entries with their sizes and sources, then a list of runs, each with the faults to schedule at
the sandbox, the token events to play and where to SIGKILL the process). Nothing here does I/O;
:mod:`tests.campaign.harness` plays a schedule against a sandbox and checks the invariants.

Fault call numbers are *relative*: call 2 of ``upload`` in a run means the second chunk PUT that
run sends, whatever earlier runs sent. A run's faults that never fire are dropped before the
next run, so the runs after the faulty ones are clean and the schedule always settles.

The schedule also says what it may legitimately spoil (see :class:`Spoilers`): an entry may end
failed or uncertain only where a fault could have caused it, which is how the campaign checks
that nothing is lost (liveness) besides that nothing is posted twice (safety).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from orchestrator.tiktok.chunks import MIN_CHUNK

GENERATOR = 6
"""The schedule generator's version (see :func:`generate`)."""

REDUCED_SEEDS = 25
"""Seeds in the default (CI) campaign; more seeds is the full campaign (> 128 MB files too)."""

USERS = ("sandbox-user-1", "sandbox-user-2", "sandbox-user-3", "sandbox-user-4")
PRIVATE_USERS = frozenset({"sandbox-user-3"})
PUBLIC_LEVELS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY")
PRIVATE_LEVELS = ("FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY")

HELD = 1.6
"""Seconds a ``delay`` fault holds an answer: past the child's read timeouts (1.0 s)."""
DRIP_GAP = 0.05
"""Seconds between two bytes of a ``drip`` answer: the whole answer takes far past any deadline."""

MAX_CLEAN_RUNS = 4
"""Fault-free runs allowed after the faulty ones before a schedule is called unsettled."""

STORE_DAMAGE = ("empty", "one_byte", "header_flip", "schema_flip", "older_copy")
"""Ways the harness spoils ``state.db`` between two runs (see :attr:`RunSpec.store_damage`):
cut to 0 or 1 byte, a flipped byte in the SQLite header or in the schema text, or the copy
taken before the first run put back (the restore guard's case; never before run 1)."""
STORE_DAMAGE_ODDS = 0.25
"""The chance of a damaged-store step before each run (version 5 on)."""

PAUSE_ODDS = 0.35
"""The chance of a pause (SIGSTOP … SIGCONT or SIGKILL) in each run (version 6 on)."""
PAUSE_KILL_ODDS = 0.2
"""The chance a paused process never comes back (SIGKILL while stopped, as a lost VM)."""
CLOCK_JUMPS = (0.0, 0.0, 0.0, 900.0, 3700.0, 7300.0)
"""Seconds TikTok's clock moves on while a process is stopped: none, a quarter hour, past an
upload URL's hour (3600 s), past an access token's lifetime (7200 s)."""

# Retryable failures answered in the endpoint's own envelope.
_SERVER_ERRORS = (500, 502, 503)
# fail_reason values a FAILED status may carry: retryable first, then permanent ones.
RETRYABLE_FAIL_REASONS = ("internal",)
PERMANENT_FAIL_REASONS = ("publish_cancelled", "spam_risk_text", "file_format_check_failed")


@dataclass(frozen=True)
class EntrySpec:
    """One manifest entry: a file of ``size`` bytes, or a video URL, or photos."""

    index: int
    user_id: str
    mode: str  # "direct" | "inbox"
    kind: str  # "file" | "video_url" | "photo"
    size: int = 0
    entry_id: str | None = None
    privacy_level: str = "SELF_ONLY"
    description: str = ""

    @property
    def name(self) -> str:
        return f"clip-{self.index}.mp4"


@dataclass(frozen=True)
class FaultSpec:
    """A sandbox fault on call ``call`` (relative to the run) of ``endpoint``."""

    endpoint: str
    call: int
    kind: str
    status: int = 503
    error_code: str | None = None
    after_bytes: int = 0
    seconds: float = 0.1


@dataclass(frozen=True)
class Trigger:
    """A moment in a run: once ``endpoint`` has received ``calls`` more requests, plus
    ``after`` seconds."""

    endpoint: str
    calls: int
    after: float = 0.0


EDIT_LENGTH = 4096
"""Bytes an in-place edit overwrites."""
EDIT_MARGIN = 1024 * 1024 + EDIT_LENGTH
"""Edits stay clear of a file's first and last MiB: those are its fingerprint, and changing
them would make it another entry (a new identity), which is not what an edit tests."""


@dataclass(frozen=True)
class EditSpec:
    """``EDIT_LENGTH`` bytes overwritten in place in entry ``entry``'s file at ``offset``:
    before the run starts (``when`` None: after the last run, perhaps killed mid-upload) or
    at that moment of the run (while it may be uploading the file)."""

    entry: int
    offset: int
    when: Trigger | None = None


@dataclass(frozen=True)
class PauseSpec:
    """The run process stopped (SIGSTOP) at ``when`` for ``seconds`` of real time while TikTok's
    clock moves ``jump`` seconds on (a pause longer than it is: an upload URL or an access token
    running out under it); then SIGCONT, or SIGKILL while stopped when ``kill``."""

    when: Trigger
    seconds: float
    jump: float = 0.0
    kill: bool = False

    def describe(self) -> str:
        end = "SIGKILL" if self.kill else "SIGCONT"
        return (
            f"pause at {self.when.endpoint}+{self.when.calls} for {self.seconds:.2f} s "
            f"(TikTok +{self.jump:.0f} s), then {end}"
        )


@dataclass(frozen=True)
class TokenEvent:
    """Something that happens to a user's tokens at the sandbox at ``when``:
    ``expire`` (their access tokens answer 401 from now on) or ``revoke`` (they removed the
    app: access and refresh tokens dead)."""

    when: Trigger
    user_id: str
    action: str


@dataclass(frozen=True)
class RunSpec:
    """One run of the real process: faults, token events, failures TikTok will report,
    and maybe a SIGKILL."""

    faults: tuple[FaultSpec, ...] = ()
    token_events: tuple[TokenEvent, ...] = ()
    fail_publishes: tuple[tuple[str, str], ...] = ()  # (open_id, fail_reason) before the run
    kill: Trigger | None = None
    jobs: int = 2
    chunk_size: int | None = None
    edits: tuple[EditSpec, ...] = ()
    add_ids: bool = False  # before the run: every entry without an id gets one
    store_damage: str | None = None
    """Before this run, one extra run on a damaged store (one of :data:`STORE_DAMAGE`): it must
    be refused (exit 1 or 2, no request sent); then the good state is put back and this run
    plays as specified."""
    pause: PauseSpec | None = None


@dataclass(frozen=True)
class Spoilers:
    """What the schedule may legitimately spoil: every entry of ``users`` (their tokens may
    be lost), and up to ``entries`` other entries (each permanent refusal, planned permanent
    FAILED or lost URL init can end one entry)."""

    users: frozenset[str] = frozenset()
    entries: int = 0


@dataclass(frozen=True)
class Schedule:
    """Everything one seed does."""

    seed: int
    full: bool
    users: tuple[str, ...]
    stale_users: frozenset[str]
    entries: tuple[EntrySpec, ...]
    runs: tuple[RunSpec, ...]
    json_logs: bool
    spoilers: Spoilers = field(default_factory=Spoilers)

    def describe(self) -> str:
        """A one-paragraph summary (for a failing seed's message)."""
        sizes = ", ".join(
            f"{e.index}:{e.user_id[-1]}/{e.mode}/{e.kind}" + (f"/{e.size:,}" if e.size else "")
            for e in self.entries
        )
        lines = [f"seed {self.seed}: entries [{sizes}]; stale tokens {sorted(self.stale_users)}"]
        for number, run in enumerate(self.runs, 1):
            faults = ", ".join(
                f"{f.endpoint}#{f.call} {f.kind}"
                + (f" {f.status}" if f.kind == "status" else "")
                + (f" {f.error_code}" if f.error_code else "")
                for f in run.faults
            )
            events = ", ".join(f"{e.action} {e.user_id}" for e in run.token_events)
            failed = ", ".join(f"{u}:{r}" for u, r in run.fail_publishes)
            kill = f"kill at {run.kill.endpoint}+{run.kill.calls}" if run.kill else "no kill"
            if run.store_damage is not None:
                lines.append(f"  before run {number}: a damaged store ({run.store_damage})")
            edits = ", ".join(
                f"{e.entry}@{e.offset}"
                + (f" at {e.when.endpoint}+{e.when.calls}" if e.when else " before")
                for e in run.edits
            )
            lines.append(
                f"  run {number} (jobs {run.jobs}, chunk {run.chunk_size}): [{faults}] "
                f"tokens [{events}] fail [{failed}] {kill} edits [{edits}]"
                + (" ids added" if run.add_ids else "")
                + (f" {run.pause.describe()}" if run.pause else "")
            )
        return "\n".join(lines)


# -- generation ------------------------------------------------------------------------------------


def _size(rng: random.Random, full: bool) -> int:
    """A video size: mostly small, some just over 5 MiB or two chunks, rarely ~64 MB or
    (full campaign) over 128 MB."""
    roll = rng.random()
    if full and roll < 0.02:
        return 130_000_000 + rng.randint(0, 5_000)
    if roll < 0.05:
        return 64_000_000 - rng.randint(0, 5_000)
    if roll < 0.25:
        return 2 * MIN_CHUNK + rng.randint(1, 3 * 1024 * 1024)  # two minimum chunks and a bit
    if roll < 0.45:
        return MIN_CHUNK + rng.randint(1, 500_000)  # just above 5 MiB
    return rng.randint(300_000, 4_900_000)  # under 5 MB: one whole chunk


def _entries(rng: random.Random, seed: int, users: tuple[str, ...], full: bool) -> list[EntrySpec]:
    entries: list[EntrySpec] = []
    inbox_users: set[str] = set()
    for index in range(rng.randint(2, 6)):
        user = rng.choice(users)
        roll = rng.random()
        kind = "video_url" if roll < 0.06 else "photo" if roll < 0.1 else "file"
        mode = "direct"
        # At most one inbox entry per user: orphan inits (lost answers) count toward the
        # creator's five pending shares, and the campaign must settle within a few runs.
        if user not in inbox_users and rng.random() < 0.2:
            mode = "inbox"
            inbox_users.add(user)
        levels = PRIVATE_LEVELS if user in PRIVATE_USERS else PUBLIC_LEVELS
        entries.append(
            EntrySpec(
                index=index,
                user_id=user,
                mode=mode,
                kind=kind,
                size=_size(rng, full) if kind == "file" else 0,
                entry_id=f"s{seed}-e{index}" if rng.random() < 0.5 else None,
                privacy_level=rng.choice(levels),
                description=f"seed {seed} entry {index}",
            )
        )
    return entries


_API_ENDPOINTS = ("creator_info", "video_init", "status")


def _fault(
    rng: random.Random,
    endpoint: str,
    spoil: list[str],
    has_url: bool,
    users_spoiled: list[str],
    gateway: random.Random,
    version: int,
) -> FaultSpec:
    """A random fault for ``endpoint``; notes in ``spoil`` / ``users_spoiled`` what it may
    legitimately end. ``gateway`` draws the choices of version 3 (so ``rng``'s sequence stays
    as it was for the seeds of earlier versions)."""
    if version == 1:
        call = rng.randint(1, 6 if endpoint == "upload" else 3)
    else:
        call = rng.choice((1, 1, 2, 2, 3, 4)) if endpoint == "upload" else rng.choice((1, 1, 2, 3))
    kinds = ["status", "status", "reset", "reset_mid_body", "lost", "delay", "drip"]
    if endpoint == "upload":
        kinds += ["expire", "expire", "status"]
    kind = rng.choice(kinds)
    init = endpoint in ("video_init", "inbox_init", "content_init")
    if kind == "status":
        if endpoint == "upload":
            status = rng.choice((*_SERVER_ERRORS, 408, 429))
            return FaultSpec(endpoint, call, kind, status=status)
        if endpoint == "token":
            return FaultSpec(endpoint, call, kind, status=rng.choice(_SERVER_ERRORS))
        roll = rng.random()
        if roll < 0.15:
            return FaultSpec(endpoint, call, kind, status=401, error_code="access_token_invalid")
        if init and roll < 0.22:
            spoil.append(f"{endpoint}#{call} invalid_params")
            return FaultSpec(endpoint, call, kind, status=400, error_code="invalid_params")
        if endpoint == "video_init" and roll < 0.3:
            # TikTok's daily cap: the user's rest waits for a later run.
            return FaultSpec(
                endpoint, call, kind, status=403, error_code="spam_risk_too_many_posts"
            )
        status = rng.choice(_SERVER_ERRORS)
        if version >= 3 and gateway.random() < 0.25:
            status = 408  # a gateway that gave up: no TikTok code, and not a refusal
        return FaultSpec(endpoint, call, kind, status=status)
    if endpoint == "token" and kind in ("lost", "delay", "drip", "reset_mid_body"):
        # The refresh may have rotated the refresh token with the answer lost: that user must
        # log in again (TikTok's rotation leaves no way back).
        users_spoiled.append("*")
    if init and has_url:
        # Even a reset before the body was read looks, to the client, like an init that may
        # have been taken: a URL init ends uncertain.
        spoil.append(f"{endpoint}#{call} {kind} (a URL init may be uncertain)")
    if kind == "reset_mid_body":
        return FaultSpec(endpoint, call, kind, after_bytes=rng.randint(0, 4096))
    if kind == "delay":
        return FaultSpec(endpoint, call, kind, seconds=HELD)
    if kind == "drip":
        return FaultSpec(endpoint, call, kind, seconds=DRIP_GAP)
    return FaultSpec(endpoint, call, kind)


def _store_damage(damage: random.Random, *, first: bool) -> str | None:
    """A damaged-store step before a run, or None; an older copy needs a run before it."""
    if damage.random() >= STORE_DAMAGE_ODDS:
        return None
    if not first and damage.random() < 0.5:
        return "older_copy"  # the restore guard's case, so it has its share of the seeds
    return damage.choice(STORE_DAMAGE[:-1])


def generate(seed: int, *, full: bool = False, version: int = GENERATOR) -> Schedule:
    """The schedule of ``seed`` (the same seed and version always give the same schedule).

    ``version`` is the generator's: 1 drew up to four faults on calls 1..6 and killed 60 % of
    the runs anywhere; 2 draws one to five faults on early calls and kills half the runs,
    mostly mid-transfer; 3 also makes a quarter of the API 5xx faults a gateway's 408; 4 also
    edits files in place (between a run and the next, and during a run) and adds ids to the
    entries without one before a later run (they must adopt their journal records); 5 also puts
    a damaged-store step before some runs (:data:`STORE_DAMAGE`, drawn from a random stream of
    its own, so a seed's other draws are unchanged); 6 also pauses the run process in some runs
    (:class:`PauseSpec`: inside an init, mid-chunk or while polling, TikTok's clock perhaps
    moving past an upload URL's hour or a token's lifetime meanwhile, and sometimes never
    resumed), again from a stream of its own. A regression seed keeps the version it was found
    with, so it replays the same schedule.
    """
    if version not in (1, 2, 3, 4, 5, 6):
        raise ValueError(f"no schedule generator version {version}")
    rng = random.Random(seed)
    gateway = random.Random(f"gateway-{seed}")
    damage = random.Random(f"store-damage-{seed}")
    users = tuple(rng.sample(USERS, rng.randint(2, 4)))
    entries = _entries(rng, seed, users, full)
    used = tuple(dict.fromkeys(e.user_id for e in entries))
    has_url = any(e.kind != "file" for e in entries)
    stale = frozenset(u for u in used if rng.random() < 0.3)
    spoil: list[str] = []
    users_spoiled: list[str] = []
    endpoints = ["creator_info", "video_init", "upload", "upload", "status", "token"]
    if any(e.mode == "inbox" and e.kind != "photo" for e in entries):
        endpoints.append("inbox_init")
    if any(e.kind == "photo" for e in entries):
        endpoints.append("content_init")
    runs: list[RunSpec] = []
    for _ in range(rng.randint(1, 3)):
        faults = tuple(
            _fault(rng, rng.choice(endpoints), spoil, has_url, users_spoiled, gateway, version)
            for _ in range(rng.randint(0, 4) if version == 1 else rng.randint(1, 5))
        )
        events: list[TokenEvent] = []
        if rng.random() < 0.25:
            when = Trigger(rng.choice(_API_ENDPOINTS), rng.randint(1, 2))
            events.append(TokenEvent(when, rng.choice(used), "expire"))
        if rng.random() < 0.03:
            victim = rng.choice(used)
            events.append(TokenEvent(Trigger("creator_info", 1), victim, "revoke"))
            users_spoiled.append(victim)
        fail: list[tuple[str, str]] = []
        if rng.random() < 0.3:
            fail.append((rng.choice(used), rng.choice(RETRYABLE_FAIL_REASONS)))
        if rng.random() < 0.08:
            fail.append((rng.choice(used), rng.choice(PERMANENT_FAIL_REASONS)))
            spoil.append("planned permanent FAILED")
        kill = None
        if version == 1 and rng.random() < 0.6:
            kill = Trigger(
                rng.choice(("creator_info", "video_init", "upload", "upload", "status")),
                rng.randint(1, 3),
                after=rng.choice((0.0, 0.0, rng.uniform(0.0, 0.3))),
            )
        elif version > 1 and rng.random() < 0.5:
            # Mostly mid-transfer or while polling, where most journal transitions happen.
            endpoint = rng.choice(("creator_info", "video_init", "upload", "upload", "status"))
            kill = Trigger(
                endpoint,
                rng.randint(1, 4 if endpoint == "upload" else 2),
                after=rng.choice((0.0, 0.0, rng.uniform(0.0, 0.3))),
            )
        runs.append(
            RunSpec(
                faults=faults,
                token_events=tuple(events),
                fail_publishes=tuple(fail),
                kill=kill,
                jobs=rng.randint(1, 4),
                chunk_size=rng.choice((MIN_CHUNK, MIN_CHUNK, 8_000_000, None)),
                store_damage=_store_damage(damage, first=not runs) if version >= 5 else None,
            )
        )
    if version >= 4:
        runs = _edits_and_ids(random.Random(f"edits-{seed}"), entries, runs)
    if version >= 6:
        runs = _pauses(random.Random(f"pauses-{seed}"), runs)
    spoiled_users = frozenset(used) if "*" in users_spoiled else frozenset(users_spoiled)
    return Schedule(
        seed=seed,
        full=full,
        users=used,
        stale_users=stale,
        entries=tuple(entries),
        runs=tuple(runs),
        json_logs=seed % 2 == 1,
        spoilers=Spoilers(users=spoiled_users, entries=len(spoil)),
    )


def _edits_and_ids(
    rng: random.Random, entries: list[EntrySpec], runs: list[RunSpec]
) -> list[RunSpec]:
    """Version 4's additions, drawn from their own generator (so the rest of the schedule is
    version 3's): in-place edits of files big enough to edit clear of their fingerprint, and
    maybe ids added before a later run."""
    editable = [e for e in entries if e.kind == "file" and e.size > 2 * EDIT_MARGIN + 1]
    adds_ids_before = rng.randint(1, len(runs)) if rng.random() < 0.3 else None
    changed = []
    for number, run in enumerate(runs):
        edits: list[EditSpec] = []
        for _ in range(rng.choice((0, 0, 1, 2)) if editable else 0):
            entry = rng.choice(editable)
            offset = rng.randint(EDIT_MARGIN, entry.size - EDIT_MARGIN)
            when = None
            if number == 0 or rng.random() < 0.5:
                when = Trigger("upload", rng.randint(1, 3), after=rng.uniform(0.0, 0.05))
            edits.append(EditSpec(entry.index, offset, when))
        changed.append(replace(run, edits=tuple(edits), add_ids=adds_ids_before == number))
    if adds_ids_before == len(runs):
        # Before the first clean run: the harness's clean runs take it from the last one.
        changed[-1] = replace(changed[-1], add_ids=False)
        changed.append(RunSpec(jobs=2, add_ids=True))
    return changed


_PAUSE_AT = ("video_init", "video_init", "upload", "upload", "upload", "status", "creator_info")
"""Where a pause lands: inside an init (its answer held or on its way), mid-chunk (the request
counted, its body still being sent), while polling, or before any transfer."""


def pause_at(rng: random.Random) -> Trigger:
    """A random moment to stop a process (see :data:`_PAUSE_AT`)."""
    endpoint = rng.choice(_PAUSE_AT)
    calls = rng.randint(1, 3 if endpoint == "upload" else 2)
    return Trigger(endpoint, calls, after=rng.choice((0.0, 0.0, rng.uniform(0.0, 0.05))))


def _pauses(rng: random.Random, runs: list[RunSpec]) -> list[RunSpec]:
    """Version 6's addition, drawn from its own generator (so the rest of the schedule is
    version 5's): a pause in some of the faulty runs."""
    changed = []
    for run in runs:
        pause = None
        if rng.random() < PAUSE_ODDS:
            pause = PauseSpec(
                when=pause_at(rng),
                seconds=rng.uniform(0.2, 1.5),
                jump=rng.choice(CLOCK_JUMPS),
                kill=rng.random() < PAUSE_KILL_ODDS,
            )
        changed.append(replace(run, pause=pause))
    return changed


# -- paused workers on a shared store --------------------------------------------------------------

WORKER_USERS = ("sandbox-user-1", "sandbox-user-2", "sandbox-user-3")
"""The users signed in to the shared store (tests/postgres's ``shared_store``)."""
REDUCED_WORKER_SEEDS = 3
"""Paused-worker seeds in the default campaign (each waits out a lease in real time)."""
WORKER_LEASE = 2.0
"""--lease of both workers: seconds after a worker's last heartbeat before the other may take
its entries and creators over."""


@dataclass(frozen=True)
class WorkerPause:
    """Worker A stopped (SIGSTOP) at ``when`` for ``seconds`` (past its lease), perhaps its
    database sessions ended meanwhile (``terminate``: ``pg_terminate_backend``, as an idle
    timeout or a pooler does), then SIGCONT, or SIGKILL while stopped (``kill``). Worker B runs
    the same manifest from the start, or (``staggered``) only once A is stopped.

    Ordered instead of timed (a schedule written by hand; the generated ones are timed):
    ``held`` holds the answer to the ``when`` request (a sandbox ``hold`` fault) until A is
    stopped outside any database transaction, so A is stopped inside that request whatever the
    machine's load; ``resume_after`` keeps A stopped, past ``seconds``, until the sandbox has
    seen that moment (B's requests only, A being stopped), e.g. B's first status poll: B has
    taken over and posted before A resumes."""

    when: Trigger
    seconds: float
    terminate: bool
    kill: bool
    staggered: bool
    held: bool = False
    resume_after: Trigger | None = None

    def __post_init__(self) -> None:
        if self.held and not self.staggered:
            # The harness stops A when no session on the database is inside a transaction:
            # only A's may be there then.
            raise ValueError("a held pause needs a staggered B (started once A is stopped)")

    def describe(self) -> str:
        end = "SIGKILL" if self.kill else "SIGCONT"
        after = self.resume_after
        return (
            f"A stopped at {self.when.endpoint}+{self.when.calls}"
            + (" (its answer held until then)" if self.held else "")
            + f" for {self.seconds:.2f} s"
            + (f" and until {after.endpoint}+{after.calls}" if after is not None else "")
            + (" (its sessions terminated)" if self.terminate else "")
            + f", then {end}; B starts "
            + ("once A is stopped" if self.staggered else "with A")
        )


@dataclass(frozen=True)
class WorkersSchedule:
    """Two workers on one PostgreSQL store, the same manifest, one of them paused (a fault on
    call 0 applies to every call)."""

    seed: int
    entries: tuple[EntrySpec, ...]
    faults: tuple[FaultSpec, ...]
    chunk_size: int | None
    pause: WorkerPause
    lease: float = WORKER_LEASE

    def describe(self) -> str:
        sizes = ", ".join(f"{e.index}:{e.user_id[-1]}/{e.mode}/{e.size:,}" for e in self.entries)
        faults = ", ".join(f"{f.endpoint}#{f.call} {f.kind} {f.status}" for f in self.faults)
        return (
            f"workers seed {self.seed}: entries [{sizes}]; lease {self.lease:g} s, chunk "
            f"{self.chunk_size}; faults [{faults}]; {self.pause.describe()}"
        )


def generate_workers(seed: int) -> WorkersSchedule:
    """The paused-worker schedule of ``seed``: a few small videos (up to three chunks) for the
    shared store's users, a few retryable faults (so every entry must end done), and the pause
    of worker A past its lease."""
    rng = random.Random(f"workers-{seed}")
    entries = []
    for index in range(rng.randint(2, 5)):
        user = rng.choice(WORKER_USERS)
        levels = PRIVATE_LEVELS if user in PRIVATE_USERS else PUBLIC_LEVELS
        size = rng.randint(300_000, 4_900_000)
        if rng.random() < 0.4:
            size = 2 * MIN_CHUNK + rng.randint(1, 3 * 1024 * 1024)
        entries.append(
            EntrySpec(
                index=index,
                user_id=user,
                mode="inbox" if rng.random() < 0.2 else "direct",
                kind="file",
                size=size,
                entry_id=f"w{seed}-e{index}" if rng.random() < 0.5 else None,
                privacy_level=rng.choice(levels),
                description=f"workers seed {seed} entry {index}",
            )
        )
    faults = tuple(
        FaultSpec(
            endpoint=rng.choice(("video_init", "upload", "status")),
            call=rng.randint(1, 3),
            kind="status",
            status=rng.choice(_SERVER_ERRORS),
        )
        for _ in range(rng.randint(0, 2))
    )
    pause = WorkerPause(
        when=pause_at(rng),
        seconds=WORKER_LEASE + rng.uniform(1.0, 2.5),
        terminate=rng.random() < 0.5,
        kill=rng.random() < 0.25,
        staggered=rng.random() < 0.5,
    )
    return WorkersSchedule(
        seed=seed,
        entries=tuple(entries),
        faults=faults,
        chunk_size=rng.choice((MIN_CHUNK, None)),
        pause=pause,
    )
