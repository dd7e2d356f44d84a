"""The orchestrator's exception tree.

Every error the orchestrator raises on purpose derives from :class:`OrchestratorError`; the CLI
turns them into exit codes in exactly one place (``cli.exit_code_for``). Messages are written for
the user: they name the problem, where it is, and the fix. No message ever contains a token,
client secret or upload-URL token (see ``orchestrator.secret``).

Lower-level exceptions (``requests``, ``sqlite3``, ``cryptography``) are translated at their
boundary with ``raise OurError(...) from exc``; nothing above the boundary sees them.

::

    OrchestratorError
    ├── UsageError                  bad command line or configuration         → exit 2
    │   ├── ConfigError             a setting is missing or invalid
    │   └── TokenFileError          a token file for `auth import` is invalid
    ├── ManifestError               the manifest is invalid (lists every problem) → exit 2
    ├── MediaError                  a video file cannot be posted (missing, not a video, cut short)
    ├── StoreError                  the state database cannot be used
    │   ├── StorePermissionError    the home or a file in it is readable by others
    │   ├── StoreKeyError           the token key is missing, malformed or wrong
    │   ├── StoreCorruptError       the database file is damaged or from a newer version
    │   │   └── StoreRestoredError  an older copy of state.db than the home last used
    │   ├── StoreMissingError       a read-only command found no state database  → exit 2
    │   ├── RunLockedError          another run holds the home's lock        → exit 75
    │   ├── ClaimLostError          a shared run's worker lost its claim on an entry
    │   └── StoreConnectionLost     the shared store's connection dropped mid-statement
    ├── AuthError                   a user's tokens cannot be used
    │   ├── NeedsLoginError         no usable refresh token: run `auth login`
    │   └── OAuthError              the OAuth server refused (carries its `error` value)
    ├── TransportError              the HTTP exchange failed before an answer arrived
    │   ├── ConnectError            could not connect / connection reset
    │   └── RequestTimeout          connect, read or per-request deadline passed
    ├── ApiError                    TikTok answered with an error code
    ├── UploadError                 an upload cannot go on (incoherent server progress)
    │   └── IllegalTransitionError  a step the upload's state does not allow (a bug)
    ├── FileWriteError              a report or other output file cannot be written
    │   └── ReportsNotWritten       some of a run's reports could not be written
    └── UnsafeConnectionError       a connection that would not be safe; the run stops → exit 2
        ├── PlainHttpError          plain http:// to a host that is not this machine
        └── CertificateError        the server's TLS certificate does not verify
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises deliberately."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(OrchestratorError):
    """Raised when the command line or the configuration cannot be acted on."""


class ConfigError(UsageError):
    """Raised when a setting (environment variable or option) is missing or invalid."""


class TokenFileError(UsageError):
    """Raised by ``auth import`` when the token file is unreadable or invalid; the message lists
    every problem found, and nothing was imported."""


class ManifestError(OrchestratorError):
    """Raised when a manifest fails validation; ``problems`` lists every problem found."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class MediaError(OrchestratorError):
    """Raised when a video file cannot be posted as it is: missing, not a regular file, empty,
    over 4 GB, not MP4/MOV/WebM by its bytes, or cut short. ``hint`` says how to fix the file.

    Manifest validation turns it into one problem per file; elsewhere it ends the entry."""


class StoreError(OrchestratorError):
    """Raised when the state database (tokens and journal) cannot be used."""


class StorePermissionError(StoreError):
    """Raised when the home folder or a file in it can be read by group or others."""


class StoreKeyError(StoreError):
    """Raised when the token encryption key is missing, malformed, or does not open the store."""


class StoreCorruptError(StoreError):
    """Raised when the database file is damaged or was written by a newer orchestrator."""


class StoreRestoredError(StoreCorruptError):
    """Raised when ``state.db`` is older than the last one used in its home (restored from a
    backup, or copied): its journal may lack posts made since, so a run could post them again."""


class StoreMissingError(StoreError):
    """Raised when a command that only reads (``auth list``, ``history``, ``status``...) finds no
    state database in the home: nothing was created, nothing was sent."""


class RunLockedError(StoreError):
    """Raised when another run holds the home's lock; nothing was sent."""


class ClaimLostError(StoreError):
    """Raised when a worker of a shared run writes the journal for an entry (or creator) it no
    longer holds: its lease ran out and another worker may have taken it over. The write is
    refused; the worker stops that entry at once (no further request to TikTok for it)."""


class StoreConnectionLost(StoreError):
    """Raised when the connection to a shared (PostgreSQL) store dropped during a statement or
    transaction (the server closed it, a pooler or the network cut it): what it was writing
    may not have been committed. The store is likely reachable again on a new connection."""


class AuthError(OrchestratorError):
    """Raised when a user's tokens cannot be used."""

    @property
    def transient(self) -> bool:
        """The token endpoint could not be reached or had trouble (a later try may work), as
        opposed to refusing the refresh token (``NeedsLoginError``) or the app's credentials."""
        cause = self.__cause__
        if isinstance(cause, TransportError):
            return True
        return isinstance(cause, OAuthError) and cause.retryable


class NeedsLoginError(AuthError):
    """Raised when a user has no usable refresh token; the fix is ``auth login``."""

    def __init__(self, open_id: str, reason: str) -> None:
        super().__init__(
            f"user {open_id}: {reason}",
            hint=f"run `tiktok-orchestrator auth login` for {open_id}",
        )
        self.open_id = open_id


class OAuthError(AuthError):
    """Raised when TikTok's OAuth endpoint answers with an ``error`` value."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        log_id: str | None = None,
        hint: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(f"OAuth error {error}: {description}", hint=hint)
        self.error = error
        self.description = description
        self.log_id = log_id
        self.http_status = http_status

    @property
    def retryable(self) -> bool:
        """The same request may succeed later (server trouble, not a refusal)."""
        if self.error in ("server_error", "temporarily_unavailable"):
            return True
        return self.http_status is not None and (self.http_status >= 500 or self.http_status == 429)


class TransportError(OrchestratorError):
    """Raised when an HTTP exchange fails before a complete answer arrived.

    ``maybe_delivered`` is False only when the request certainly never reached the server (the
    connection could not be opened); otherwise the server may have acted on it, which matters
    for requests that are not safe to repeat (a PULL_FROM_URL init publishes).
    """

    retryable = True

    def __init__(
        self, message: str, *, hint: str | None = None, maybe_delivered: bool = True
    ) -> None:
        super().__init__(message, hint=hint)
        self.maybe_delivered = maybe_delivered


class ConnectError(TransportError):
    """Raised when a connection cannot be made or is reset."""


class RequestTimeout(TransportError):
    """Raised when the connect, read, or whole-request deadline passes."""


class ApiError(OrchestratorError):
    """Raised when TikTok answers with an error code (``error.code != "ok"``).

    ``retryable``: the same request may succeed later; ``reauth``: refresh the token and retry
    once; ``defer``: stop posting for this user in this run.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        http_status: int,
        log_id: str | None = None,
        retryable: bool = False,
        reauth: bool = False,
        defer: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code, hint=hint)
        self.code = code
        self.api_message = message
        self.http_status = http_status
        self.log_id = log_id
        self.retryable = retryable
        self.reauth = reauth
        self.defer = defer


class UploadError(OrchestratorError):
    """Raised when an upload cannot go on (the server's progress is incoherent, the URL died)."""


class IllegalTransitionError(UploadError):
    """Raised when the upload state machine is asked for a step its state does not allow; the
    message names the steps that are legal next (a bug in the caller, never a TikTok answer)."""


class FileWriteError(OrchestratorError):
    """Raised when a report or other output file cannot be written; the old file is intact."""


class ReportsNotWritten(FileWriteError):
    """Raised by ``report.write_reports`` after it tried every requested format and some could
    not be written (disk full, a folder that is not one). ``written`` lists the paths that were
    written; ``failures`` has one message per path that was not."""

    def __init__(self, failures: list[str], written: list[object], *, hint: str | None) -> None:
        super().__init__("; ".join(failures), hint=hint)
        self.failures = list(failures)
        self.written = list(written)


class UnsafeConnectionError(OrchestratorError):
    """Raised by the transport, before any byte of the request is sent, when the connection
    would not be safe. Never retried: the whole run stops (exit 2), because the fix is the
    user's (a URL, a CA bundle) and every later request would meet the same problem.

    ``report`` is the stopped run's ``RunReport`` (each entry's result, the ones not attempted
    with this reason), set by the run that stopped, so the CLI writes it as for any run. Typed
    ``object`` because this module is a leaf: it may import nothing of the orchestrator's."""

    report: object = None


class PlainHttpError(UnsafeConnectionError):
    """Raised for an ``http://`` URL whose host is not loopback (127.0.0.0/8, ::1,
    ``localhost``): a token or an upload URL's own token would cross the network in clear."""


class CertificateError(UnsafeConnectionError):
    """Raised when a server's TLS certificate does not verify (unknown CA, wrong host name,
    expired): a configuration problem (a private CA not trusted) or an interception."""
