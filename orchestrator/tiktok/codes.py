"""What TikTok's error codes and ``fail_reason`` values mean for us, kept as data.

Two tables, one per vocabulary (``tiktok-api.md`` §1, §4, §7, §9):

- :data:`ERROR_CODES`: ``error.code`` of an API answer → what to do (:class:`Disposition`) and a
  hint for the user. Codes not in the table (and answers without one, from a gateway) are
  ``retryable`` when the HTTP status is 5xx, 408 or 429, and ``permanent`` otherwise.
- :data:`FAIL_REASONS`: ``fail_reason`` of a FAILED status → whether a later attempt may succeed
  and a hint.

This module only classifies; raising, retrying and deferring happen in the client and the upload
engine. It must not grow per-call-site special cases: a new code is one new row.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


class Disposition(enum.Enum):
    """What the orchestrator does when TikTok answers with a code."""

    RETRYABLE = "retryable"
    """The same request may succeed later: back off and retry it."""
    REAUTH = "reauth"
    """The access token was refused: refresh it once and retry once."""
    DEFER = "defer"
    """The creator cannot post more now: stop posting for this user; a later run tries again."""
    PERMANENT = "permanent"
    """Retrying the same request cannot help: report it with the hint."""


@dataclass(frozen=True)
class CodeInfo:
    """The meaning of one ``error.code``."""

    disposition: Disposition
    hint: str


@dataclass(frozen=True)
class FailReasonInfo:
    """The meaning of one ``fail_reason``: may a later attempt (a new init) succeed?"""

    retryable: bool
    hint: str


_FIX_PARAMS = "TikTok refused the request's fields; check the entry against the manifest reference"
_RELOGIN_SCOPES = (
    "run `tiktok-orchestrator auth login` for this user and grant video.publish "
    "(direct posts) and video.upload (inbox uploads)"
)

ERROR_CODES: Final = MappingProxyType(
    {
        "access_token_invalid": CodeInfo(
            Disposition.REAUTH,
            "the access token was refused; if refreshing does not help, run "
            "`tiktok-orchestrator auth login` for this user",
        ),
        "scope_not_authorized": CodeInfo(Disposition.PERMANENT, _RELOGIN_SCOPES),
        "scope_permission_missed": CodeInfo(Disposition.PERMANENT, _RELOGIN_SCOPES),
        # The tables say invalid_param, real answers say invalid_params (§10): accept both.
        "invalid_params": CodeInfo(Disposition.PERMANENT, _FIX_PARAMS),
        "invalid_param": CodeInfo(Disposition.PERMANENT, _FIX_PARAMS),
        "invalid_file_upload": CodeInfo(
            Disposition.PERMANENT,
            "TikTok refused the file; check it is MP4/MOV/WebM within TikTok's limits",
        ),
        "rate_limit_exceeded": CodeInfo(
            Disposition.RETRYABLE,
            "too many requests for this user in the last minute; the orchestrator waits for "
            "the window",
        ),
        "internal_error": CodeInfo(
            Disposition.RETRYABLE, "TikTok had an internal error; a later attempt may succeed"
        ),
        "spam_risk_too_many_posts": CodeInfo(
            Disposition.DEFER,
            "the creator reached TikTok's daily post limit; the rest of this user's entries "
            "wait for a later run",
        ),
        "spam_risk_too_many_pending_share": CodeInfo(
            Disposition.DEFER,
            "the creator has too many unfinished inbox drafts; they must post or delete some "
            "in the TikTok app",
        ),
        "reached_active_user_cap": CodeInfo(
            Disposition.DEFER,
            "the app reached its limit of posting users for today; try again in a later run",
        ),
        "spam_risk_user_banned_from_posting": CodeInfo(
            Disposition.PERMANENT, "TikTok has banned this creator from posting"
        ),
        "unaudited_client_can_only_post_to_private_accounts": CodeInfo(
            Disposition.PERMANENT,
            "the app is not audited yet: post SELF_ONLY to a private account, or have the app "
            "audited by TikTok",
        ),
        "url_ownership_unverified": CodeInfo(
            Disposition.PERMANENT,
            "verify the media URL's domain or prefix for the app in the TikTok developer portal",
        ),
        "privacy_level_option_mismatch": CodeInfo(
            Disposition.PERMANENT,
            "the privacy level is not one the creator offers; use one of creator_info's "
            "privacy_level_options",
        ),
        "invalid_publish_id": CodeInfo(
            Disposition.PERMANENT, "TikTok does not know this publish_id"
        ),
        "token_not_authorized_for_specified_publish_id": CodeInfo(
            Disposition.PERMANENT, "this publish_id belongs to another user or app"
        ),
    }
)

_UNKNOWN_SERVER = CodeInfo(
    Disposition.RETRYABLE, "TikTok answered with a server error; a later attempt may succeed"
)
_TRANSIENT_STATUSES = frozenset({408, 429})
_UNKNOWN_CLIENT = CodeInfo(
    Disposition.PERMANENT, "TikTok answered with an error code the orchestrator does not know"
)

_FIX_MEDIA = "re-encode the video within TikTok's limits (MP4/H.264, 23-60 fps, 360-4096 px)"

FAIL_REASONS: Final = MappingProxyType(
    {
        "file_format_check_failed": FailReasonInfo(False, _FIX_MEDIA),
        "duration_check_failed": FailReasonInfo(
            False, "the video is longer than the creator may post; shorten it"
        ),
        "frame_rate_check_failed": FailReasonInfo(False, _FIX_MEDIA),
        "picture_size_check_failed": FailReasonInfo(False, _FIX_MEDIA),
        "internal": FailReasonInfo(True, "TikTok failed internally; a later run tries again"),
        "video_pull_failed": FailReasonInfo(
            True, "TikTok could not download the video URL; check it is reachable over https"
        ),
        "photo_pull_failed": FailReasonInfo(
            True, "TikTok could not download a photo URL; check each is reachable over https"
        ),
        "publish_cancelled": FailReasonInfo(False, "the post was cancelled"),
        "auth_removed": FailReasonInfo(
            False, "the creator removed the app's access; run `tiktok-orchestrator auth login`"
        ),
        "spam_risk_too_many_posts": FailReasonInfo(
            False, "the creator reached TikTok's daily post limit"
        ),
        "spam_risk_user_banned_from_posting": FailReasonInfo(
            False, "TikTok has banned this creator from posting"
        ),
        "spam_risk_text": FailReasonInfo(
            False, "TikTok flagged the caption as spam; change the caption"
        ),
        "spam_risk": FailReasonInfo(False, "TikTok flagged the post as spam"),
    }
)

_UNKNOWN_FAIL_REASON = FailReasonInfo(
    False, "TikTok gave a reason the orchestrator does not know; check the post in the app"
)


def classify_code(code: str, http_status: int) -> CodeInfo:
    """The meaning of ``error.code`` answered with ``http_status``."""
    known = ERROR_CODES.get(code)
    if known is not None:
        return known
    # A gateway's 408 (request timeout) or 429 (too many requests) carries no TikTok envelope;
    # both say "later", not "never".
    if http_status >= 500 or http_status in _TRANSIENT_STATUSES:
        return _UNKNOWN_SERVER
    return _UNKNOWN_CLIENT


def classify_fail_reason(fail_reason: str | None) -> FailReasonInfo:
    """The meaning of a FAILED status's ``fail_reason`` (unknown or missing: not retryable)."""
    if fail_reason is None:
        return _UNKNOWN_FAIL_REASON
    return FAIL_REASONS.get(fail_reason, _UNKNOWN_FAIL_REASON)


ORCHESTRATOR_CODES: Final = MappingProxyType(
    {
        "needs_login": "the user's refresh token expired or was revoked: run "
        "`tiktok-orchestrator auth login` for that user; the other users went on",
        "auth_error": "the token endpoint refused the refresh; check TIKTOK_CLIENT_KEY and "
        "TIKTOK_CLIENT_SECRET, then `auth refresh OPEN_ID`",
        "store_error": "the state database could not be read for this user; see the message "
        "(a damaged row: `auth remove` and `auth login` that user)",
        "unavailable": "TikTok could not be reached for this user (network, DNS, TLS); the "
        "entries were deferred to the next run",
        "creator_info_mismatch": "the entry asks for something the creator's settings forbid "
        "(privacy level not offered, an interaction they disabled, a video longer than they may "
        "post); change the entry as the hint says",
        "daily_cap": "the user reached the daily direct-post cap counted from the journal "
        "(--daily-cap, default 15); the next run posts the rest",
        "pending_inbox_cap": "the user has too many inbox drafts from the last 24 h "
        "(--inbox-cap, default 5); they must post or delete drafts in the app",
        "scheduled": "publish_at is in the future; the first run after it posts the entry",
        "interrupted": "the run was stopped (Ctrl-C, SIGTERM); run again to go on from the journal",
        "claim_lost": "a worker of a shared run lost its claim on the entry (paused or cut off "
        "past --lease) and another worker took it over; that worker finishes it (`report "
        "--run-id` shows the outcome)",
        "retry_budget_spent": "TikTok kept failing and the run's retry budget ran out; the rest "
        "was deferred; check TikTok's status and the network, then run again",
        "deferred": "TikTok asked to post later (a cap); the next run tries again",
        "unsafe_connection": "the run stopped (exit 2) before sending to a server reached over "
        "plain http:// off this machine or whose TLS certificate does not verify; use https://, "
        "or trust a private CA with REQUESTS_CA_BUNDLE / SSL_CERT_FILE, then run again",
        "uncertain": "an init for a URL or photo source lost its answer and may have posted; "
        "check the creator's profile, and if it did not post give the entry a new id",
        "file_unreadable": "the video could not be opened or changed size since validation; "
        "check the file and run again",
        "file_changed": "the file was modified while uploading (nothing was published) — finish "
        "writing it, then run again",
        "upload_error": "the upload could not go on (see the message); run again",
        "transport": "the connection to TikTok failed repeatedly; run again",
        "upload_server_error": "TikTok's upload server kept failing; run again",
        "upload_incoherent": "TikTok's idea of the upload's progress did not fit the chunk "
        "plan; the next run starts the upload again",
        "upload_rejected": "TikTok refused a chunk's headers or length (a bug: please report "
        "it with the log_id)",
        "upload_url_expired": "the upload URL's hour ran out before the last byte; the next run "
        "starts the upload again (nothing was published)",
        "failed": "TikTok reported FAILED without a reason; check the post in the app",
        "dry_run": "a dry run: nothing was sent; the message says what a real run would do",
        "unexpected_error": "the orchestrator hit an unexpected error on this entry (a bug: "
        "please report it with the log); the other entries went on and a rerun tries it again",
        "awaiting_review": "the post waits for its creator's confirmation on the review page "
        "of `serve` (send them a review link); the next run after they press Post posts it",
        "declined": "the creator declined the post on the review page; it is never posted "
        "(give the entry a new id to offer it again)",
        "invalid_response": "TikTok answered ok without the fields the call must carry; "
        "a rerun asks again (if it persists, report it with the log_id)",
    }
)
"""The orchestrator's own error codes in reports, with what to do about each."""
