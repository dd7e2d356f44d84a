"""What the sandbox simulates: its app credentials, its users and every tunable limit.

Values only, validated on construction. This module knows nothing of HTTP or of state; the
numbers that come from ``tiktok-api.md`` are named constants here so the rules read by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.sandbox.rules import MAX_WEB_REDIRECT_URIS, web_redirect_problem

# Scopes (tiktok-api.md §2, §3a).
SCOPE_USER_INFO_BASIC = "user.info.basic"
SCOPE_USER_INFO_PROFILE = "user.info.profile"
SCOPE_USER_INFO_STATS = "user.info.stats"
SCOPE_VIDEO_PUBLISH = "video.publish"
SCOPE_VIDEO_UPLOAD = "video.upload"
SCOPE_VIDEO_LIST = "video.list"
KNOWN_SCOPES = (
    SCOPE_USER_INFO_BASIC,
    SCOPE_USER_INFO_PROFILE,
    SCOPE_USER_INFO_STATS,
    SCOPE_VIDEO_PUBLISH,
    SCOPE_VIDEO_UPLOAD,
    SCOPE_VIDEO_LIST,
)
DEFAULT_GRANT_SCOPES = (SCOPE_USER_INFO_BASIC, SCOPE_VIDEO_PUBLISH, SCOPE_VIDEO_UPLOAD)

# App types (tiktok-api.md §2, §2.1): a Desktop app redirects to a loopback http port; a Web app
# registers https redirect URIs, matched exactly.
APP_DESKTOP = "desktop"
APP_WEB = "web"
APP_TYPES = (APP_DESKTOP, APP_WEB)

# PKCE challenge readings a Web app may accept (§2.1: RFC 7636 base64url is the reference;
# whether web also takes the desktop flow's hex is unknown, so the sandbox can pin either).
PKCE_S256 = "s256"  # base64url(sha256(verifier)), no padding
PKCE_HEX = "hex"  # hex(sha256(verifier)), as the desktop flow wants
PKCE_READINGS = (PKCE_S256, PKCE_HEX)

# Privacy levels (tiktok-api.md §3).
PUBLIC_TO_EVERYONE = "PUBLIC_TO_EVERYONE"
MUTUAL_FOLLOW_FRIENDS = "MUTUAL_FOLLOW_FRIENDS"
FOLLOWER_OF_CREATOR = "FOLLOWER_OF_CREATOR"
SELF_ONLY = "SELF_ONLY"
PRIVACY_LEVELS = (PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, FOLLOWER_OF_CREATOR, SELF_ONLY)
PUBLIC_ACCOUNT_OPTIONS = (PUBLIC_TO_EVERYONE, MUTUAL_FOLLOW_FRIENDS, SELF_ONLY)
PRIVATE_ACCOUNT_OPTIONS = (FOLLOWER_OF_CREATOR, MUTUAL_FOLLOW_FRIENDS, SELF_ONLY)

# Documented limits per minute per user token (tiktok-api.md §8, §3a).
INIT_PER_MINUTE = 6
CREATOR_INFO_PER_MINUTE = 20
STATUS_PER_MINUTE = 30
USER_INFO_PER_MINUTE = 600

# fail_reason values a scheduled failure may carry (tiktok-api.md §7).
FAIL_REASONS = (
    "file_format_check_failed",
    "duration_check_failed",
    "frame_rate_check_failed",
    "picture_size_check_failed",
    "internal",
    "video_pull_failed",
    "photo_pull_failed",
    "publish_cancelled",
    "auth_removed",
    "spam_risk_too_many_posts",
    "spam_risk_user_banned_from_posting",
    "spam_risk_text",
    "spam_risk",
)


@dataclass(frozen=True)
class SandboxUser:
    """One TikTok account the sandbox knows, as creator_info and user_info describe it.

    ``privacy_level_options`` left empty is derived from ``private`` the way TikTok does it
    (public accounts: everyone / friends / self; private accounts: followers / friends / self).
    ``username`` left empty is derived from ``open_id``.
    """

    open_id: str
    display_name: str
    username: str = ""
    private: bool = False
    privacy_level_options: tuple[str, ...] = ()
    comment_disabled: bool = False
    duet_disabled: bool = False
    stitch_disabled: bool = False
    max_video_post_duration_sec: int = 600
    banned: bool = False

    def __post_init__(self) -> None:
        if not self.open_id or not self.open_id.strip():
            raise ValueError("a sandbox user needs an open_id")
        if not self.username:
            object.__setattr__(self, "username", self.open_id.replace("-", "_"))
        options = tuple(self.privacy_level_options)
        if not options:
            options = PRIVATE_ACCOUNT_OPTIONS if self.private else PUBLIC_ACCOUNT_OPTIONS
        unknown = [level for level in options if level not in PRIVACY_LEVELS]
        if unknown:
            raise ValueError(f"unknown privacy levels for {self.open_id}: {unknown}")
        object.__setattr__(self, "privacy_level_options", options)
        if self.max_video_post_duration_sec <= 0:
            raise ValueError("max_video_post_duration_sec must be positive")


def default_users() -> tuple[SandboxUser, ...]:
    """Three users: two public accounts and one private one."""
    return (
        SandboxUser(open_id="sandbox-user-1", display_name="Sandbox One"),
        SandboxUser(open_id="sandbox-user-2", display_name="Sandbox Two"),
        SandboxUser(open_id="sandbox-user-3", display_name="Sandbox Three", private=True),
    )


@dataclass(frozen=True)
class SandboxConfig:
    """Every tunable of the simulator. Durations are seconds on the injected clock.

    - ``access_token_ttl`` / ``refresh_token_ttl``: lifetimes, sent as ``expires_in`` /
      ``refresh_expires_in``; a refresh issues a refresh token with a full new lifetime.
    - ``authorization_code_ttl``: how long a code from the authorize page can be exchanged.
    - ``upload_url_ttl``: how long an ``upload_url`` accepts chunks (TikTok: one hour).
    - ``processing_polls``: status fetches that answer PROCESSING_* after the media is in,
      before the terminal status.
    - ``rate_limits``: enforce the sliding one-minute windows of §8, per user (open_id).
    - ``daily_post_cap``: direct posts per creator per 24 h; ``pending_inbox_cap``: inbox shares
      not yet posted per creator per 24 h.
    - ``unaudited``: an unaudited app — private accounts only, ``SELF_ONLY`` posts only, at most
      ``unaudited_user_cap`` posting users per 24 h.
    - ``app_type``: ``"desktop"`` (Login Kit for Desktop: hex PKCE, loopback redirects) or
      ``"web"`` (Login Kit for Web: https redirect URIs registered in ``redirect_uris``).
    - ``redirect_uris``: empty accepts any ``http`` loopback URI with a port (a Desktop app);
      otherwise the exact registered URIs. A Web app must register 1 to 10, each under 512
      characters, absolute ``https://``, without query or fragment.
    - ``web_pkce``: the PKCE challenge readings a Web app accepts at token exchange, ``"s256"``
      (RFC 7636 base64url) and/or ``"hex"``; both by default, since TikTok's is unknown.
    - ``allow_loopback_http_redirect``: **sandbox-only allowance, for tests**: a Web app may
      also register ``http://127.0.0.1:PORT/connect/callback/`` (or ``localhost``). Real TikTok
      accepts only https redirect URIs for a Web app.
    - ``verified_url_prefixes``: URL prefixes verified for PULL_FROM_URL.
    """

    users: tuple[SandboxUser, ...] = field(default_factory=default_users)
    client_key: str = "sbx_client_key"
    client_secret: str = field(default="sbx_client_secret", repr=False)
    access_token_ttl: int = 7200
    refresh_token_ttl: int = 180 * 86400
    authorization_code_ttl: int = 600
    upload_url_ttl: int = 3600
    processing_polls: int = 1
    rate_limits: bool = True
    daily_post_cap: int = 15
    pending_inbox_cap: int = 5
    unaudited: bool = False
    unaudited_user_cap: int = 5
    redirect_uris: tuple[str, ...] = ()
    app_type: str = APP_DESKTOP
    web_pkce: tuple[str, ...] = PKCE_READINGS
    allow_loopback_http_redirect: bool = False
    verified_url_prefixes: tuple[str, ...] = ("https://media.example.com/",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", tuple(self.users))
        object.__setattr__(self, "redirect_uris", tuple(self.redirect_uris))
        object.__setattr__(self, "verified_url_prefixes", tuple(self.verified_url_prefixes))
        object.__setattr__(self, "web_pkce", tuple(self.web_pkce))
        if not self.users:
            raise ValueError("the sandbox needs at least one user")
        ids = [user.open_id for user in self.users]
        if len(set(ids)) != len(ids):
            raise ValueError("sandbox users' open_ids must be unique")
        if not self.client_key or not self.client_secret:
            raise ValueError("client_key and client_secret must not be empty")
        for name in (
            "access_token_ttl",
            "refresh_token_ttl",
            "authorization_code_ttl",
            "upload_url_ttl",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("processing_polls", "daily_post_cap", "pending_inbox_cap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.unaudited_user_cap < 1:
            raise ValueError("unaudited_user_cap must be at least 1")
        for prefix in self.verified_url_prefixes:
            if not prefix.startswith("https://"):
                raise ValueError(f"verified URL prefix must be https: {prefix!r}")
        if self.app_type not in APP_TYPES:
            raise ValueError(f"app_type must be one of {APP_TYPES}, not {self.app_type!r}")
        if not self.web_pkce or any(r not in PKCE_READINGS for r in self.web_pkce):
            raise ValueError(f"web_pkce must be a non-empty subset of {PKCE_READINGS}")
        if self.app_type == APP_WEB:
            self._check_web_redirect_uris()

    def _check_web_redirect_uris(self) -> None:
        if not 1 <= len(self.redirect_uris) <= MAX_WEB_REDIRECT_URIS:
            raise ValueError(
                f"a web app registers 1 to {MAX_WEB_REDIRECT_URIS} redirect URIs, "
                f"not {len(self.redirect_uris)}"
            )
        for uri in self.redirect_uris:
            problem = web_redirect_problem(
                uri, allow_loopback_http=self.allow_loopback_http_redirect
            )
            if problem is not None:
                raise ValueError(f"redirect URI {uri!r}: {problem}")

    def user(self, open_id: str) -> SandboxUser | None:
        """The configured user with this open_id, if any."""
        for user in self.users:
            if user.open_id == open_id:
                return user
        return None
