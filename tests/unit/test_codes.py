"""TikTok's error codes and fail reasons are classified by one table each."""

from __future__ import annotations

import pytest

from orchestrator.tiktok.codes import (
    ERROR_CODES,
    FAIL_REASONS,
    Disposition,
    classify_code,
    classify_fail_reason,
)

# tiktok-api.md §9, row by row.
EXPECTED = {
    "internal_error": Disposition.RETRYABLE,
    "rate_limit_exceeded": Disposition.RETRYABLE,
    "access_token_invalid": Disposition.REAUTH,
    "spam_risk_too_many_posts": Disposition.DEFER,
    "spam_risk_too_many_pending_share": Disposition.DEFER,
    "reached_active_user_cap": Disposition.DEFER,
    "spam_risk_user_banned_from_posting": Disposition.PERMANENT,
    "unaudited_client_can_only_post_to_private_accounts": Disposition.PERMANENT,
    "privacy_level_option_mismatch": Disposition.PERMANENT,
    "url_ownership_unverified": Disposition.PERMANENT,
    "invalid_params": Disposition.PERMANENT,
    "invalid_param": Disposition.PERMANENT,
    "scope_not_authorized": Disposition.PERMANENT,
    "invalid_publish_id": Disposition.PERMANENT,
    "token_not_authorized_for_specified_publish_id": Disposition.PERMANENT,
}


@pytest.mark.parametrize(("code", "disposition"), sorted(EXPECTED.items()))
def test_documented_codes_have_the_documented_disposition(
    code: str, disposition: Disposition
) -> None:
    """Each code of §9 is retried, refreshed, deferred or reported as the doc says."""
    assert classify_code(code, 400).disposition is disposition
    assert classify_code(code, 500).disposition is disposition


def test_both_spellings_of_invalid_params_mean_the_same() -> None:
    """The tables' invalid_param and the real answers' invalid_params are one thing."""
    assert ERROR_CODES["invalid_param"] == ERROR_CODES["invalid_params"]


def test_unknown_code_depends_on_the_http_status() -> None:
    """An unknown code is retried on 5xx and reported as permanent otherwise."""
    assert classify_code("brand_new_code", 503).disposition is Disposition.RETRYABLE
    assert classify_code("brand_new_code", 400).disposition is Disposition.PERMANENT
    assert classify_code("brand_new_code", 200).disposition is Disposition.PERMANENT


@pytest.mark.parametrize("status", [408, 429])
def test_a_gateways_408_or_429_without_a_tiktok_code_is_retried_not_permanent(status: int) -> None:
    """A 408 or 429 without TikTok's envelope (a gateway's page) is transient: retried, never
    a permanent failure of the entry (found with the fault campaign's 408s)."""
    assert classify_code(f"http_{status}", status).disposition is Disposition.RETRYABLE
    assert classify_code("invalid_params", status).disposition is Disposition.PERMANENT


def test_every_code_and_reason_has_a_hint() -> None:
    """Every row tells the user something to do (no empty hints)."""
    assert all(info.hint.strip() for info in ERROR_CODES.values())
    assert all(info.hint.strip() for info in FAIL_REASONS.values())


@pytest.mark.parametrize(
    ("reason", "retryable"),
    [
        ("file_format_check_failed", False),
        ("duration_check_failed", False),
        ("frame_rate_check_failed", False),
        ("picture_size_check_failed", False),
        ("internal", True),
        ("video_pull_failed", True),
        ("photo_pull_failed", True),
        ("publish_cancelled", False),
        ("auth_removed", False),
        ("spam_risk_too_many_posts", False),
        ("spam_risk_user_banned_from_posting", False),
        ("spam_risk_text", False),
        ("spam_risk", False),
    ],
)
def test_fail_reasons_are_retryable_as_documented(reason: str, retryable: bool) -> None:
    """§7: internal and pull failures may succeed later; the rest need a change first."""
    assert classify_fail_reason(reason).retryable is retryable


def test_unknown_or_missing_fail_reason_is_not_retried() -> None:
    """A FAILED without a known reason is not retried blindly (a retry is a new post)."""
    assert not classify_fail_reason("something_new").retryable
    assert not classify_fail_reason(None).retryable


def test_tables_cannot_be_changed_at_runtime() -> None:
    """The tables are read-only: no caller can patch a classification."""
    with pytest.raises(TypeError):
        ERROR_CODES["internal_error"] = ERROR_CODES["invalid_params"]  # type: ignore[index]
