"""Every tunable of a run in one validated object: :class:`RunSettings`.

Like s3transfer's ``TransferConfig``: one frozen value holding every knob of the upload engine
and of the run around it, each documented with its unit, validated once on construction (a bad
value raises ``ValueError`` before anything is opened or sent). The runner hands the same
object to the engine (``Uploader(config=...)``), the retrier, the clients and the shared queue;
nothing overrides anything.

This is *how* a run behaves. *Where* it runs and *as whom* (home, credentials, endpoints, the
environment) is ``config.Settings``. It must not read the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.retry import RetryPolicy
from orchestrator.store.queue import DEFAULT_LEASE
from orchestrator.tiktok.chunks import DEFAULT_CHUNK
from orchestrator.transport import Timeouts

__all__ = ["RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """A run's tunables. Times in seconds, sizes in bytes, rates in bytes per second.

    Chunks (``tiktok.chunks`` limits apply):

    - ``chunk_size``: preferred chunk size; None: the largest TikTok accepts
      (``chunks.DEFAULT_CHUNK``). Smaller chunks resend less after a failure.
    - ``chunk_connect_timeout`` / ``chunk_read_timeout``: per socket operation of a chunk PUT.
    - ``chunk_min_rate`` and ``chunk_min_deadline``: a chunk PUT is abandoned after
      ``max(chunk_min_deadline, length / chunk_min_rate)`` whatever the server does.

    Upload URLs and the limits of one entry (per run):

    - ``upload_url_ttl``: how long an upload URL lives (TikTok: one hour), counted from the
      moment the init was sent; ``upload_url_margin``: no chunk is started closer to its end.
    - ``max_reinits``: new inits allowed after upload URLs died.
    - ``max_source_changes``: fresh uploads started because the file changed while it was
      being sent; one more change fails the entry ``file_changed``.
    - ``max_resyncs``: 416 answers in a row before the server's progress is called incoherent.
    - ``max_settles``: status fetches to settle a lost last-chunk acknowledgement.

    Status polling:

    - ``poll_first`` … ``poll_max``: the interval between status fetches, growing by
      ``poll_factor`` (a ratio, >= 1); ``poll_timeout``: how long to poll before leaving the
      entry ``processing`` (0: do not wait; a later run polls).

    Retries and the run around the engine:

    - ``budget_retries`` / ``budget_wait``: the run-wide retry budget — at most this many
      retries, and this many seconds of backoff summed over every thread, for the whole run.
      Each request still has its own limit (``retry_policy``: 5 attempts, backoff capped at
      64 s). Measured with the defaults and ``--jobs 4``: against an API answering 503 to
      everything, 3 users end in ~11 s and 40 users in ~42 s (126 requests; the budget is
      spent after 22 users and the other 18 are deferred without a request).
    - ``retry_policy``: how each request is retried (None: ``tiktok-api.md`` §9's).
    - ``api_timeouts``: the limits of every API and token-endpoint request (None: the
      clients' own, ``client.API_TIMEOUTS`` and ``oauth.OAUTH_TIMEOUTS``).
    - ``lease``: shared store only: how long a dead worker's claim on an entry lasts
      (``store/queue.py``).
    """

    chunk_size: int | None = None
    chunk_connect_timeout: float = 10.0
    chunk_read_timeout: float = 60.0
    chunk_min_rate: float = 100_000.0
    chunk_min_deadline: float = 60.0
    upload_url_ttl: float = 3600.0
    upload_url_margin: float = 30.0
    max_reinits: int = 2
    max_source_changes: int = 2
    max_resyncs: int = 3
    max_settles: int = 3
    poll_first: float = 2.0
    poll_factor: float = 1.5
    poll_max: float = 30.0
    poll_timeout: float = 600.0
    budget_retries: int = 100
    budget_wait: float = 600.0
    retry_policy: RetryPolicy | None = None
    api_timeouts: Timeouts | None = None
    lease: float = DEFAULT_LEASE

    def __post_init__(self) -> None:
        positive = (
            self.chunk_connect_timeout,
            self.chunk_read_timeout,
            self.chunk_min_rate,
            self.chunk_min_deadline,
            self.upload_url_ttl,
            self.poll_first,
            self.poll_max,
        )
        if any(value <= 0 for value in positive):
            raise ValueError("upload timeouts, rates and poll intervals must be positive")
        if self.poll_factor < 1 or self.poll_max < self.poll_first:
            raise ValueError("polling must back off: poll_factor >= 1, poll_max >= poll_first")
        if self.poll_timeout < 0:
            raise ValueError("poll_timeout cannot be negative")
        limits = (self.max_reinits, self.max_source_changes, self.max_resyncs, self.max_settles)
        if min(*limits, self.upload_url_margin) < 0:
            raise ValueError("upload limits cannot be negative")
        if self.budget_retries < 0 or self.budget_wait < 0:
            raise ValueError("the retry budget cannot be negative")
        if self.lease <= 0:
            raise ValueError("the lease must be positive")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError("chunk_size must be positive (None: the largest TikTok accepts)")

    @property
    def preferred_chunk_size(self) -> int:
        """``chunk_size``, or the largest chunk TikTok accepts when it is None."""
        return self.chunk_size if self.chunk_size is not None else DEFAULT_CHUNK

    def chunk_timeouts(self, length: int) -> Timeouts:
        """The timeouts of one chunk PUT of ``length`` bytes."""
        return Timeouts(
            connect=self.chunk_connect_timeout,
            read=self.chunk_read_timeout,
            total=max(self.chunk_min_deadline, length / self.chunk_min_rate),
        )
