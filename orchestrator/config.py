"""Settings from command-line options and the environment, validated once.

This is the only module that reads ``os.environ``. Every variable has a matching command-line
option (the option wins). Secrets (the client secret, the token key) are read from the
environment only, never from an argument, because arguments show in ``ps``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.errors import ConfigError
from orchestrator.secret import Secret

DEFAULT_REDIRECT_URI = "http://127.0.0.1:8765/callback/"
DEFAULT_SCOPES: tuple[str, ...] = ("user.info.basic", "video.publish", "video.upload")
"""The scopes ``auth login`` asks for (here rather than in ``tiktok.oauth`` so the command line
can show them without importing the HTTP stack)."""
DEFAULT_CALLBACK_TIMEOUT = 300.0
"""Seconds ``auth login`` waits for the browser to come back to the loopback redirect."""
DEFAULT_API_BASE = "https://open.tiktokapis.com"
DEFAULT_AUTH_URL = "https://www.tiktok.com/v2/auth/authorize/"

ENV_CLIENT_KEY = "TIKTOK_CLIENT_KEY"
ENV_CLIENT_SECRET = "TIKTOK_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
ENV_REDIRECT_URI = "TIKTOK_REDIRECT_URI"
ENV_HOME = "ORCHESTRATOR_HOME"
ENV_TOKEN_KEY = "ORCHESTRATOR_TOKEN_KEY"  # noqa: S105 - a variable name, not a secret
ENV_API_BASE = "ORCHESTRATOR_API_BASE"
ENV_AUTH_URL = "ORCHESTRATOR_AUTH_URL"
ENV_STORE = "ORCHESTRATOR_STORE"
ENV_NOTIFY = "ORCHESTRATOR_NOTIFY"
ENV_NOTIFY_REVIEW_LINKS = "ORCHESTRATOR_NOTIFY_REVIEW_LINKS"
ENV_EXPECT_STATE = "ORCHESTRATOR_EXPECT_STATE"
ENV_PROXIES = {"https": "HTTPS_PROXY", "http": "HTTP_PROXY"}
ENV_NO_PROXY = "NO_PROXY"
ENV_CA_BUNDLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
"""Where a private CA's PEM bundle may be named, first found wins (requests' and OpenSSL's
names; ``.netrc`` is never read, so no credential is attached from it)."""
ENV_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
"""Set by GitHub Actions: a run appends its Markdown summary to the file it names."""
STORE_SCHEMES = ("postgresql://", "postgres://")


def default_home() -> Path:
    """The platform's per-user state folder for the orchestrator."""
    import platformdirs

    return Path(platformdirs.user_state_dir("tiktok-orchestrator", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where to talk and where to keep state."""

    home: Path
    api_base: str = DEFAULT_API_BASE
    auth_url: str = DEFAULT_AUTH_URL
    redirect_uri: str = DEFAULT_REDIRECT_URI
    client_key: str | None = None
    client_secret: Secret | None = field(default=None, repr=False)
    token_key: Secret | None = field(default=None, repr=False)
    store_url: Secret | None = field(default=None, repr=False)
    """A PostgreSQL connection URL (it may hold a password), or None for the home's SQLite."""
    step_summary: Path | None = None
    """Where GitHub Actions wants the run's Markdown summary appended (``$GITHUB_STEP_SUMMARY``)."""
    notify_urls: tuple[Secret, ...] = field(default=(), repr=False)
    """Apprise URLs for notifications (``ORCHESTRATOR_NOTIFY``, space-separated; a command's
    ``--notify`` replaces them). Secret: they carry webhook tokens and passwords."""
    notify_review_links: bool = False
    """A run's notice carries a fresh review link per creator with posts awaiting review
    (``--notify-review-links`` or ``ORCHESTRATOR_NOTIFY_REVIEW_LINKS=1``): links are single-use
    bearer tokens, so only when the operator opts in."""
    public_url: str | None = None
    """``ORCHESTRATOR_PUBLIC_URL``: where ``serve`` is reached (review links point there)."""
    expect_state: bool = False
    """``run`` refuses a home without a state database (``--expect-state`` or
    ``ORCHESTRATOR_EXPECT_STATE=1``): in CI, a lost state.db must stop the run, not post again."""

    def require_client(self) -> tuple[str, Secret]:
        """The app credentials, or a ConfigError saying which variable to set."""
        missing = [
            name
            for name, value in (
                (ENV_CLIENT_KEY, self.client_key),
                (ENV_CLIENT_SECRET, self.client_secret),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} not set",
                hint="export the app's credentials from developers.tiktok.com (Manage apps)",
            )
        assert self.client_key is not None
        assert self.client_secret is not None
        return self.client_key, self.client_secret

    def token_key_bytes(self) -> bytes | None:
        """The 32-byte token key from ``ORCHESTRATOR_TOKEN_KEY``, if set."""
        if self.token_key is None:
            return None
        return decode_token_key(self.token_key)

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields replaced (e.g. by the sandbox)."""
        return replace(self, **changes)  # type: ignore[arg-type]


_KEY_HINT = (
    "generate one with: "
    'python -c "import os, base64; print(base64.b64encode(os.urandom(32)).decode())"'
)


def decode_token_key(key: Secret) -> bytes:
    """Decode a base64 token key, insisting on exactly 32 bytes."""
    try:
        raw = base64.b64decode(key.reveal().strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(
            f"{ENV_TOKEN_KEY} is not valid base64",
            hint=_KEY_HINT,
        ) from exc
    if len(raw) != 32:
        raise ConfigError(
            f"{ENV_TOKEN_KEY} decodes to {len(raw)} bytes; AES-256 needs exactly 32",
            hint=_KEY_HINT,
        )
    return raw


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is this machine: ``localhost``, 127.0.0.0/8 or ::1."""
    if not host:
        return False
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _check_http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        # Tokens ride on these requests: in clear text, anyone on the path could take them.
        raise ConfigError(
            f"{name} is a plain http:// URL to {parts.hostname}, which is not this machine: "
            "tokens would be sent in clear text",
            hint=f"use https:// in {name}; http:// is allowed only to 127.0.0.1, ::1 or "
            "localhost (a local sandbox)",
        )
    return value.rstrip("/") if name == ENV_API_BASE else value


def _check_redirect_uri(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
        raise ConfigError(
            f"{ENV_REDIRECT_URI} must be a loopback URL with a port, got {value!r}",
            hint="TikTok desktop apps redirect to http://127.0.0.1:PORT/callback/",
        )
    return value


def _check_store_url(value: str | None) -> Secret | None:
    """``None``/``sqlite`` for the home's SQLite file, or a PostgreSQL URL (kept secret)."""
    if value is None or value == "sqlite":
        return None
    if not value.startswith(STORE_SCHEMES):
        # The value may hold a password: the message names the variable, not the value.
        raise ConfigError(
            f"{ENV_STORE} (or --store) must be `sqlite` or a postgresql:// URL",
            hint="e.g. postgresql://orchestrator@db.example/orchestrator",
        )
    return Secret(value)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _check_flag(name: str, value: str) -> bool:
    """A yes/no variable: ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``/unset."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(
        f"{name} must be 1 or 0 (true/false, yes/no), got {value.strip()!r}",
        hint=f"e.g. {name}=1, or unset it",
    )


def _pick(env: Mapping[str, str], option: str | None, var: str) -> str | None:
    """The option if given, else the environment variable's value (stripped), else None."""
    if option:
        return option
    value = env.get(var, "").strip()
    return value or None


def load_settings(
    *,
    environ: Mapping[str, str] | None = None,
    home: str | os.PathLike[str] | None = None,
    api_base: str | None = None,
    auth_url: str | None = None,
    redirect_uri: str | None = None,
    client_key: str | None = None,
    store: str | None = None,
) -> Settings:
    """Build Settings from options (which win) and the environment, validating each value."""
    env = os.environ if environ is None else environ

    home_value = _pick(env, None if home is None else os.fspath(home), ENV_HOME)
    home_path = Path(home_value).expanduser() if home_value else default_home()
    secret = env.get(ENV_CLIENT_SECRET, "").strip()
    token_key = env.get(ENV_TOKEN_KEY, "").strip()
    store_url = _check_store_url(_pick(env, store, ENV_STORE))
    notify_urls = env.get(ENV_NOTIFY, "").split()
    expect_state = _check_flag(ENV_EXPECT_STATE, env.get(ENV_EXPECT_STATE, ""))
    settings = Settings(
        home=home_path,
        api_base=_check_http_url(
            ENV_API_BASE, _pick(env, api_base, ENV_API_BASE) or DEFAULT_API_BASE
        ),
        auth_url=_check_http_url(
            ENV_AUTH_URL, _pick(env, auth_url, ENV_AUTH_URL) or DEFAULT_AUTH_URL
        ),
        redirect_uri=_check_redirect_uri(
            _pick(env, redirect_uri, ENV_REDIRECT_URI) or DEFAULT_REDIRECT_URI
        ),
        client_key=_pick(env, client_key, ENV_CLIENT_KEY),
        client_secret=Secret(secret) if secret else None,
        token_key=Secret(token_key) if token_key else None,
        store_url=store_url,
        step_summary=Path(step_summary) if (step_summary := env.get(ENV_STEP_SUMMARY)) else None,
        notify_urls=tuple(Secret(url.strip()) for url in notify_urls if url.strip()),
        expect_state=expect_state,
        notify_review_links=_check_flag(
            ENV_NOTIFY_REVIEW_LINKS, env.get(ENV_NOTIFY_REVIEW_LINKS, "")
        ),
        public_url=(env.get(ENV_PUBLIC_URL, "").strip().rstrip("/") or None),
    )
    if settings.token_key is not None:
        decode_token_key(settings.token_key)
    return settings


@dataclass(frozen=True)
class NetworkSettings:
    """How HTTP leaves the machine: proxies per URL scheme, hosts that bypass them, and the CA
    bundle that verifies servers (``None``: the bundle that ships with requests)."""

    proxies: Mapping[str, Secret] = field(default_factory=dict, repr=False)
    """Proxy URL per scheme (``https``, ``http``); secret, as it may carry a password."""
    no_proxy: tuple[str, ...] = ()
    ca_bundle: Path | None = None

    def proxy_for(self, scheme: str, host: str | None, port: int | None) -> Secret | None:
        """The proxy for a request, or ``None`` to connect directly. Loopback never goes
        through a proxy (a local sandbox, the OAuth callback)."""
        proxy = self.proxies.get(scheme)
        if proxy is None or is_loopback_host(host) or host is None:
            return None
        return None if _bypasses(self.no_proxy, host.lower().strip("[]"), port) else proxy


def _bypasses(no_proxy: tuple[str, ...], host: str, port: int | None) -> bool:
    """Whether ``NO_PROXY`` names ``host``: ``*``, the host, a parent domain (``example.com``
    or ``.example.com``), ``host:port``, or an IP network (``10.0.0.0/8``)."""
    for rule in no_proxy:
        if rule == "*":
            return True
        name, _, rule_port = rule.rpartition(":") if rule.count(":") == 1 else (rule, "", "")
        if rule_port and (not rule_port.isdigit() or int(rule_port) != port):
            continue
        name = name.lstrip(".").lower()
        if host == name or host.endswith("." + name):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                return True
        except ValueError:
            continue
    return False


def load_network(environ: Mapping[str, str] | None = None) -> NetworkSettings:
    """Proxies and CA bundle from the environment (upper- or lower-case names, as curl reads
    them). ``.netrc`` is not read: requests would attach its credentials to requests."""
    env = os.environ if environ is None else environ

    def read(name: str) -> str:
        return (env.get(name) or env.get(name.lower()) or "").strip()

    proxies: dict[str, Secret] = {}
    for scheme, name in ENV_PROXIES.items():
        value = read(name)
        if not value:
            continue
        if urlsplit(value if "://" in value else f"http://{value}").hostname is None:
            raise ConfigError(
                f"{name} is not a proxy URL", hint=f"e.g. {name}=http://proxy.example:3128"
            )
        proxies[scheme] = Secret(value if "://" in value else f"http://{value}")
    no_proxy = tuple(rule.strip() for rule in read(ENV_NO_PROXY).split(",") if rule.strip())
    ca_bundle = None
    for name in ENV_CA_BUNDLES:
        value = env.get(name, "").strip()
        if value:
            ca_bundle = Path(value).expanduser()
            if not ca_bundle.is_file():
                raise ConfigError(
                    f"{name} names {ca_bundle}, which is not a file",
                    hint=f"point {name} at the PEM file of your CA's certificates",
                )
            break
    return NetworkSettings(proxies=proxies, no_proxy=no_proxy, ca_bundle=ca_bundle)


# -- the web application (`serve`) ---------------------------------------------------------------

ENV_PUBLIC_URL = "ORCHESTRATOR_PUBLIC_URL"
ENV_ADMIN_PASSWORD = "ORCHESTRATOR_ADMIN_PASSWORD"  # noqa: S105 - a variable name, not a secret
ENV_ADMIN_PASSWORD_HASH = "ORCHESTRATOR_ADMIN_PASSWORD_HASH"  # noqa: S105 - a variable name
ENV_TRUSTED_PROXIES = "ORCHESTRATOR_TRUSTED_PROXIES"
ENV_UPLOAD_ROOTS = "ORCHESTRATOR_UPLOAD_ROOTS"
ENV_WEB_PKCE = "ORCHESTRATOR_WEB_PKCE"
WEB_ENV_VARS = (
    ENV_PUBLIC_URL,
    ENV_ADMIN_PASSWORD,
    ENV_ADMIN_PASSWORD_HASH,
    ENV_TRUSTED_PROXIES,
    ENV_UPLOAD_ROOTS,
    ENV_WEB_PKCE,
)
DEFAULT_WEB_HOST = "127.0.0.1"
DEFAULT_WEB_PORT = 8700
DEFAULT_SESSION_LIFETIME = 12 * 3600.0
"""Seconds an operator's login lasts."""
WEB_PKCE_READINGS = ("s256", "hex")
"""How the code challenge is written for a Web app: ``s256`` is base64url(SHA-256(verifier)) as
RFC 7636 and TikTok's Web reference say; ``hex`` is the hex SHA-256 the desktop flow needs
(tiktok-api.md §2.1), for apps where TikTok's server turns out to expect it."""
DEFAULT_WEB_PKCE = "s256"


@dataclass(frozen=True)
class WebConfig:
    """How ``serve`` listens, which address browsers see, and who may sign in."""

    public_url: str
    """What the browsers see, without a trailing slash; the OAuth redirect URI is
    ``{public_url}/connect/callback/``."""
    host: str = DEFAULT_WEB_HOST
    port: int = DEFAULT_WEB_PORT
    admin_password: Secret | None = field(default=None, repr=False)
    admin_password_hash: Secret | None = field(default=None, repr=False)
    """A ``$scrypt$...`` string made by ``orchestrator.web.security.hash_password``."""
    trusted_proxies: int = 0
    """How many reverse proxies in front set ``X-Forwarded-Proto/Host/For`` (0: trust none)."""
    upload_roots: tuple[Path, ...] = ()
    """The folders a posted entry's ``video_path`` may name (none: no ``video_path`` at all)."""
    pkce: str = DEFAULT_WEB_PKCE
    session_lifetime: float = DEFAULT_SESSION_LIFETIME
    warnings: tuple[str, ...] = ()
    """What the command should tell the operator at start (e.g. a plain-http public URL)."""

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry ``Secure`` when browsers reach the app over https."""
        return self.public_url.startswith("https://")

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/connect/callback/"


def _check_public_url(value: str) -> tuple[str, tuple[str, ...]]:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{ENV_PUBLIC_URL} (or --public-url) must be an https:// URL, got {value!r}",
            hint="the address the creators' browsers see, e.g. https://posts.example.com",
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"{ENV_PUBLIC_URL} must not have a query or fragment, got {value!r}",
            hint="e.g. https://posts.example.com or https://example.com/orchestrator",
        )
    if parts.scheme == "http":
        if not is_loopback_host(parts.hostname):
            # Session cookies, invite tokens and OAuth codes would cross the network in clear.
            raise ConfigError(
                f"{ENV_PUBLIC_URL} is a plain http:// URL to {parts.hostname}: logins, invites "
                "and TikTok's authorization codes would travel in clear text",
                hint="put serve behind a TLS reverse proxy (Caddy or nginx, see the README) and "
                f"set {ENV_PUBLIC_URL}=https://...; http:// is accepted only for 127.0.0.1 "
                "or localhost",
            )
        return value.rstrip("/"), (
            f"{ENV_PUBLIC_URL} is plain http:// ({value}): fine for trying it on this machine, "
            "but creators elsewhere need an https:// address",
        )
    return value.rstrip("/"), ()


def load_web_config(
    *,
    environ: Mapping[str, str] | None = None,
    host: str | None = None,
    port: int | None = None,
    public_url: str | None = None,
    trusted_proxies: int | None = None,
    upload_roots: str | None = None,
    pkce: str | None = None,
    require_password: bool = True,
) -> WebConfig:
    """Build the ``serve`` settings from options (which win) and the environment.

    Without a public URL, a loopback bind gets ``http://HOST:PORT`` (with the plain-http
    warning); any other bind must name its public URL. The admin password is read from the
    environment only (arguments show in ``ps``)."""
    env = os.environ if environ is None else environ

    bind_host = host or DEFAULT_WEB_HOST
    bind_port = DEFAULT_WEB_PORT if port is None else port
    url = _pick(env, public_url, ENV_PUBLIC_URL)
    if url is None:
        if not is_loopback_host(bind_host):
            raise ConfigError(
                f"serve binds {bind_host}, which is not loopback, but {ENV_PUBLIC_URL} is not set",
                hint=f"set {ENV_PUBLIC_URL} (or --public-url) to the https:// address the "
                "creators' browsers see",
            )
        shown = f"[{bind_host}]" if ":" in bind_host else bind_host
        url = f"http://{shown}:{bind_port}"
    checked_url, warnings = _check_public_url(url)

    proxies_text = (
        str(trusted_proxies)
        if trusted_proxies is not None
        else (env.get(ENV_TRUSTED_PROXIES, "").strip() or "0")
    )
    if not proxies_text.isdigit() or int(proxies_text) > 10:
        raise ConfigError(
            f"{ENV_TRUSTED_PROXIES} (or --trusted-proxies) must be a number from 0 to 10, "
            f"got {proxies_text!r}",
            hint="the number of reverse proxies in front of serve (1 for one Caddy or nginx)",
        )

    roots_text = _pick(env, upload_roots, ENV_UPLOAD_ROOTS) or ""
    roots: list[Path] = []
    for part in roots_text.split(os.pathsep):
        if not part.strip():
            continue
        root = Path(part.strip()).expanduser()
        if not root.is_dir():
            raise ConfigError(
                f"{ENV_UPLOAD_ROOTS} (or --upload-roots) names {root}, which is not a folder",
                hint=f"list existing folders separated by {os.pathsep!r}",
            )
        roots.append(root.resolve())

    pkce_value = (_pick(env, pkce, ENV_WEB_PKCE) or DEFAULT_WEB_PKCE).lower()
    if pkce_value not in WEB_PKCE_READINGS:
        raise ConfigError(
            f"{ENV_WEB_PKCE} (or --pkce) must be one of {', '.join(WEB_PKCE_READINGS)}, "
            f"got {pkce_value!r}",
            hint=f"{DEFAULT_WEB_PKCE} unless TikTok answers 'Code verifier or code challenge "
            "is invalid', then hex",
        )

    password = env.get(ENV_ADMIN_PASSWORD, "")
    password_hash = env.get(ENV_ADMIN_PASSWORD_HASH, "").strip()
    if password and password_hash:
        raise ConfigError(
            f"both {ENV_ADMIN_PASSWORD} and {ENV_ADMIN_PASSWORD_HASH} are set",
            hint="keep one (the hash is better: the password is then nowhere on the server)",
        )
    if password_hash and not password_hash.startswith("$scrypt$"):
        raise ConfigError(
            f"{ENV_ADMIN_PASSWORD_HASH} is not a $scrypt$ hash",
            hint="make one with: python -m orchestrator.web.security hash-password",
        )
    if require_password and not password and not password_hash:
        raise ConfigError(
            f"neither {ENV_ADMIN_PASSWORD} nor {ENV_ADMIN_PASSWORD_HASH} is set: nobody could "
            "sign in to the operator's pages",
            hint=f"export {ENV_ADMIN_PASSWORD_HASH} (python -m orchestrator.web.security "
            f"hash-password) or {ENV_ADMIN_PASSWORD}",
        )
    return WebConfig(
        public_url=checked_url,
        host=bind_host,
        port=bind_port,
        admin_password=Secret(password) if password else None,
        admin_password_hash=Secret(password_hash) if password_hash else None,
        trusted_proxies=int(proxies_text),
        upload_roots=tuple(roots),
        pkce=pkce_value,
        warnings=warnings,
    )
