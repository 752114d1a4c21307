"""One typed configuration schema, read from a TOML file and the environment.

Every key has a type, a default, a unit where it has one, and a description;
`postyard config` prints them all (the documentation is generated from this
schema, so it cannot drift). Precedence: defaults < TOML file < environment.
Unknown keys, in the file or as ``POSTYARD_*`` variables, are an error that
names them and the nearest known key.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECONDS = 1.0
ENV_PREFIX = "POSTYARD_"


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to change."""


def _key(default: Any, doc: str, *, unit: str = "", env: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"doc": doc, "unit": unit, "env": env})


@dataclass(frozen=True, slots=True)
class Listen:
    """A ``host:port`` address to bind."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, key: str) -> Listen:
        host, sep, port = text.strip().rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"{key}: expected host:port such as 127.0.0.1:8080, got {text!r}")
        host = host.strip("[]") or "0.0.0.0"
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Config:
    """Postyard settings. Field names are the TOML keys; ``POSTYARD_<NAME>`` overrides."""

    data_dir: Path = _key(Path("./data"), "Data directory: SQLite database, secret key.")
    database_url: str = _key(
        "",
        "SQLAlchemy URL of the store; empty means SQLite at <data_dir>/postyard.db. "
        "Example: postgresql+psycopg://postgres@127.0.0.1:5432/postyard",
    )
    http_listen: str = _key("127.0.0.1:8080", "API, admin UI, tracking and websocket listener.")
    inbound_listen: str = _key("0.0.0.0:25", "Inbound SMTP listener for DSN and ARF reports.")
    submission_listen: str = _key("0.0.0.0:587", "SMTP submission listener (AUTH with API key).")
    public_url: str = _key(
        "",
        "Base URL users reach the HTTP listener at (admin links, tracking links); "
        "empty means http://<http_listen>.",
    )
    admin_base_url: str = _key(
        "",
        "URL browsers reach the admin UI at, when not <public_url>/admin/ (a proxy in front); "
        "the OpenID Connect redirect URI is this URL + 'oidc/callback'.",
        env=("POSTYARD_ADMIN_URL", "ADMIN_URL"),
    )
    hostname: str = _key("", "Name this node uses in EHLO and Message-IDs; empty = system FQDN.")
    dns_nameservers: tuple[str, ...] = _key(
        (), "DNS servers as host:port, comma separated; empty = system resolver."
    )
    outbound_ips: tuple[str, ...] = _key(
        (),
        "Public addresses (or CIDR ranges) mail leaves from, comma separated; sending "
        "domains' SPF records authorize them as ip4:/ip6: terms.",
    )
    spf_include: str = _key(
        "",
        "A domain whose SPF record covers the outbound addresses (include: term of sending "
        "domains' SPF records). Sending domains need this or outbound_ips.",
    )
    smtp_port: int = _key(25, "Port used when connecting to recipient MX hosts.")
    tls_cert_file: str = _key(
        "",
        "PEM certificate chain for STARTTLS on the inbound and submission listeners; "
        "empty = no STARTTLS offered.",
    )
    tls_key_file: str = _key("", "PEM private key of tls_cert_file.")
    delivery_concurrency: int = _key(
        100, "Messages the delivery engine works on at once (claimed and not yet settled)."
    )
    destination_connections: int = _key(
        4, "Most simultaneous SMTP connections to one destination (recipient domain or relay)."
    )
    destination_rate: float = _key(
        0.0, "Most messages per second to one destination; 0 = no limit.", unit="messages/s"
    )
    messages_per_connection: int = _key(
        100, "Messages sent over one SMTP connection before it is closed and a new one opened."
    )
    smtp_connect_timeout: float = _key(
        30 * SECONDS, "Delivery: longest TCP connect to an MX host or relay.", unit="s"
    )
    smtp_command_timeout: float = _key(
        60 * SECONDS,
        "Delivery: longest wait for the greeting, each reply (EHLO, MAIL, RCPT, DATA...) "
        "and the TLS handshake; a server that hangs longer is left and the message deferred.",
        unit="s",
    )
    smtp_data_timeout: float = _key(
        180 * SECONDS,
        "Delivery: longest wait for the server to take each 64 KiB of a message.",
        unit="s",
    )
    smtp_data_end_timeout: float = _key(
        600 * SECONDS,
        "Delivery: longest wait for the verdict after the final dot of DATA.",
        unit="s",
    )
    lease_duration: float = _key(
        300 * SECONDS,
        "How long a claimed message belongs to this node; a crashed node's claims return to "
        "the queue after it (live nodes renew theirs).",
        unit="s",
    )
    smtp_max_retries: int = _key(
        5, "Delivery attempts after the first before a soft bounce.", env=("SMTP_MAX_RETRIES",)
    )
    smtp_retry_base_delay: float = _key(
        60 * SECONDS,
        "First retry delay; later ones grow by the schedule (x5, x15, x60, x240).",
        unit="s",
        env=("SMTP_RETRY_BASE_DELAY",),
    )
    smtp_greylist_retry_delay: float = _key(
        30 * SECONDS,
        "Retry delay after a greylisting reply to a first attempt (shorter than the schedule, "
        "so a greylisted message is delivered within a minute or so).",
        unit="s",
    )
    capture_mode: bool = _key(
        False,
        "Staging mode (postyard serve --capture): every outbound message is kept in the "
        "built-in mailbox (admin UI, /api/admin/captures) instead of being delivered; no DNS "
        "lookup, no SMTP connection, and sending domains may send before their DNS records "
        "verify. Never on a production box.",
    )
    secret_key: str = _key(
        "",
        "Key for secrets at rest (Fernet, urlsafe base64); empty = <data_dir>/secret.key.",
    )
    log_level: str = _key("info", "Minimum log level: debug, info, warning, error.")
    shutdown_grace: float = _key(
        10 * SECONDS, "On SIGTERM, how long services may drain before they are cancelled.", unit="s"
    )
    restart_backoff_max: float = _key(
        30 * SECONDS, "Longest wait before restarting a crashed service.", unit="s"
    )
    heartbeat_interval: float = _key(
        5 * SECONDS, "How often services report they are alive.", unit="s"
    )
    api_rate_limit: int = _key(
        6000, "Requests per API key per rate-limit window (X-RateLimit-Limit).", unit="requests"
    )
    api_rate_window: float = _key(60 * SECONDS, "Length of the rate-limit window.", unit="s")
    api_key_cache_ttl: float = _key(
        5 * SECONDS, "How long a verified API key is trusted before re-reading it.", unit="s"
    )
    sending_rules_cache_ttl: float = _key(
        5 * SECONDS,
        "How long mail/send and submission trust a tenant's status and a sending domain's "
        "verified/active state before re-reading them. A change made on this node applies at "
        "once; a change made on another node sharing the database applies within this delay. "
        "0 = read them for every request.",
        unit="s",
    )
    db_pool_size: int = _key(8, "Database connections for readers (and writers on PostgreSQL).")
    submission_allow_plain_auth: bool = _key(
        False,
        "Offer AUTH on the submission listener before STARTTLS (API keys in clear text). "
        "Without it, AUTH needs TLS, except on a loopback-only listener without a certificate.",
    )
    max_queued_messages: int = _key(
        0,
        "Messages waiting for delivery (queued or deferred) above which new mail is refused "
        "(HTTP 503, SMTP 451 4.4.2); 0 = no limit.",
        unit="messages",
    )
    event_stream_poll_interval: float = _key(
        0.25 * SECONDS, "How often the live event stream reads new events.", unit="s"
    )
    event_stream_buffer: int = _key(
        1000,
        "Events buffered per live-stream client; a client further behind is dropped "
        "(close code 1008, 'client too slow').",
        unit="events",
    )
    reputation_check_interval: float = _key(
        60 * SECONDS,
        "How often the reputation guard recomputes bounce and complaint rates.",
        unit="s",
    )
    reputation_min_volume: int = _key(
        100,
        "Delivered plus bounced messages a tenant or domain needs in a window before its "
        "rates are judged.",
        unit="messages",
    )
    reputation_alert_hard_bounce_rate: float = _key(
        0.05, "Hard-bounce rate that raises a reputation_alert event (0.05 = 5 %).", unit="ratio"
    )
    reputation_alert_complaint_rate: float = _key(
        0.001, "Complaint rate that raises a reputation_alert event (0.001 = 0.1 %).", unit="ratio"
    )
    reputation_suspend_hard_bounce_rate: float = _key(
        0.10, "Hard-bounce rate that suspends the tenant's sending (0.10 = 10 %).", unit="ratio"
    )
    reputation_suspend_complaint_rate: float = _key(
        0.005, "Complaint rate that suspends the tenant's sending (0.005 = 0.5 %).", unit="ratio"
    )

    oidc_issuer: str = _key(
        "",
        "Issuer URL of the OpenID Connect provider for admin UI login "
        "(https://id.example.com/realms/ops); empty = no single sign-on. Register "
        "<admin URL>oidc/callback with it as the client's redirect URI.",
    )
    oidc_client_id: str = _key("", "Client ID the provider issued to Postyard.")
    oidc_client_secret: str = _key(
        "", "Client secret of oidc_client_id; empty = a public client (PKCE only)."
    )
    oidc_scopes: str = _key(
        "openid email profile groups", "Scopes asked of the provider, space separated."
    )
    oidc_groups_claim: str = _key(
        "groups",
        "ID token claim listing the user's groups; a dotted path (realm_access.roles) "
        "reaches a nested claim.",
    )
    oidc_role_map: str = _key(
        "",
        "Admin UI role of each provider group, comma separated: 'ops=admin,dev=developer'. "
        "The first entry whose group the user is in wins.",
    )
    oidc_default_role: str = _key(
        "", "Role of a user none of whose groups is in oidc_role_map; empty = refuse them."
    )
    oidc_button_label: str = _key(
        "Sign in with single sign-on", "Text of the login page's OpenID Connect button."
    )

    webhook_disable_after: float = _key(
        24 * 3600 * SECONDS,
        "A webhook whose deliveries keep failing this long is disabled (disabled_at) and an "
        'alert event emitted; its pending events wait for PATCH {"enabled": true}.',
        unit="s",
    )
    webhook_allow_link_local: bool = _key(
        False,
        "Let webhooks go to link-local and cloud metadata addresses (169.254.0.0/16, "
        "fe80::/10, fd00:ec2::254, 100.100.100.200); refused by default, at create and update "
        "and when a host name resolves to one at delivery.",
    )

    admin_session_lifetime: float = _key(
        12 * 3600 * SECONDS, "How long an admin UI sign-in lasts at most.", unit="s"
    )
    admin_session_idle_timeout: float = _key(
        2 * 3600 * SECONDS, "An admin UI session unused this long is signed out.", unit="s"
    )
    admin_login_max_failures: int = _key(
        5, "Wrong passwords or codes in a row that lock an admin account.", unit="attempts"
    )
    admin_lockout_duration: float = _key(
        15 * 60 * SECONDS, "How long a locked admin account stays locked.", unit="s"
    )
    admin_login_rate_limit: int = _key(
        20,
        "Sign-in attempts per client address per minute on the admin UI (all accounts).",
        unit="attempts",
    )

    # ---- derived values -------------------------------------------------

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "postyard.db"

    @property
    def effective_hostname(self) -> str:
        """This node's name in EHLO, Message-IDs and the bounce MX records."""
        return (self.hostname or socket.getfqdn()).rstrip(".").lower()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path.resolve()}"

    @property
    def http(self) -> Listen:
        return Listen.parse(self.http_listen, key="http_listen")

    @property
    def inbound(self) -> Listen:
        return Listen.parse(self.inbound_listen, key="inbound_listen")

    @property
    def submission(self) -> Listen:
        return Listen.parse(self.submission_listen, key="submission_listen")

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        listen = self.http
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(listen.host, listen.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{listen.port}"

    @property
    def admin_url(self) -> str:
        if self.admin_base_url:
            return self.admin_base_url.rstrip("/") + "/"
        return f"{self.base_url}/admin/"

    @property
    def oidc_redirect_uri(self) -> str:
        """The redirect URI to register with the OpenID Connect provider."""
        return f"{self.admin_url}oidc/callback"

    @property
    def oidc_role_mapping(self) -> dict[str, str]:
        """``oidc_role_map`` as group -> role, in the order given."""
        return parse_role_map(self.oidc_role_map)


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def describe() -> list[dict[str, str]]:
    """Every key with its environment variables, default, unit and description."""
    rows = []
    for f in dataclasses.fields(Config):
        envs = [ENV_PREFIX + f.name.upper(), *f.metadata["env"]]
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(default)
        elif isinstance(default, bool):
            default = str(default).lower()
        rows.append(
            {
                "key": f.name,
                "env": ", ".join(envs),
                "default": str(default),
                "unit": f.metadata["unit"],
                "doc": f.metadata["doc"],
            }
        )
    return rows


def _coerce(name: str, raw: object) -> object:
    f = _FIELDS[name]
    target = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if target == "Path":
            return Path(str(raw))
        if target == "bool":
            return _boolean(raw)
        if target == "int":
            if isinstance(raw, bool):
                raise ValueError
            return int(str(raw))
        if target == "float":
            if isinstance(raw, bool):
                raise ValueError
            return float(str(raw))
        if target.startswith("tuple"):
            items = raw.split(",") if isinstance(raw, str) else list(raw)  # type: ignore[call-overload]
            return tuple(str(i).strip() for i in items if str(i).strip())
        if not isinstance(raw, str):
            raise ValueError
        return raw
    except (ValueError, TypeError):
        raise ConfigError(f"{name}: expected {target}, got {raw!r}") from None


_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True}
_BOOLEANS |= {"false": False, "0": False, "no": False, "off": False}


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _BOOLEANS:
        return _BOOLEANS[raw.strip().lower()]
    raise ValueError


def _unknown(names: list[str], *, where: str) -> ConfigError:
    hints = []
    for name in names:
        close = difflib.get_close_matches(name.lower(), list(_FIELDS), n=1)
        hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return ConfigError(
        f"unknown configuration key{'s' if len(names) > 1 else ''} in {where}: "
        + ", ".join(hints)
        + ". `postyard config` lists every key."
    )


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Config:
    """Build the configuration from defaults, an optional TOML file, the environment
    and explicit overrides (command-line flags), in that order of precedence."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = Path(env[ENV_PREFIX + "CONFIG"])
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
        unknown = sorted(k for k in data if k not in _FIELDS)
        if unknown:
            raise _unknown(unknown, where=str(path))
        values.update({k: _coerce(k, v) for k, v in data.items()})

    aliases = {alias: f.name for f in _FIELDS.values() for alias in f.metadata["env"]}
    unknown_env = []
    for var, raw in env.items():
        if var in aliases:
            values[aliases[var]] = _coerce(aliases[var], raw)
        elif var.startswith(ENV_PREFIX) and var != ENV_PREFIX + "CONFIG":
            name = var[len(ENV_PREFIX) :].lower()
            if name in _FIELDS:
                values[name] = _coerce(name, raw)
            else:
                unknown_env.append(var)
    if unknown_env:
        raise _unknown(sorted(unknown_env), where="the environment")
    for name, value in (overrides or {}).items():
        if name not in _FIELDS:
            raise _unknown([name], where="the command line")
        if value is not None:
            values[name] = _coerce(name, value)

    config = Config(**values)  # type: ignore[arg-type]
    _check(config)
    return config


def _check(config: Config) -> None:
    for listen in ("http", "inbound", "submission"):
        getattr(config, listen)  # parses, raising ConfigError on a bad address
    if config.log_level not in {"debug", "info", "warning", "error"}:
        raise ConfigError(
            f"log_level: expected debug, info, warning or error, got {config.log_level!r}"
        )
    if config.smtp_max_retries < 0:
        raise ConfigError("smtp_max_retries: must be 0 or more")
    for name in ("connect", "command", "data", "data_end"):
        if getattr(config, f"smtp_{name}_timeout") <= 0:
            raise ConfigError(f"smtp_{name}_timeout: must be a positive number of seconds")
    if config.smtp_retry_base_delay <= 0:
        raise ConfigError("smtp_retry_base_delay: must be a positive number of seconds")
    if config.max_queued_messages < 0:
        raise ConfigError("max_queued_messages: must be 0 (no limit) or more")
    if config.api_rate_limit <= 0 or config.api_rate_window <= 0:
        raise ConfigError("api_rate_limit and api_rate_window must be positive")
    for ip in config.outbound_ips:
        try:
            ipaddress.ip_network(ip, strict=False)
        except ValueError:
            raise ConfigError(f"outbound_ips: {ip!r} is not an IP address or CIDR range") from None
    if config.spf_include and (
        any(ch.isspace() for ch in config.spf_include) or ":" in config.spf_include
    ):
        raise ConfigError(
            f"spf_include: expected a domain name such as _spf.example.com, "
            f"got {config.spf_include!r}"
        )
    if config.database_url and not config.database_url.startswith(("sqlite", "postgresql")):
        raise ConfigError(
            "database_url: only sqlite:/// and postgresql+psycopg:// URLs are supported, got "
            + repr(config.database_url.split("://")[0] + "://…")
        )
    if config.admin_base_url and not config.admin_base_url.startswith(("https://", "http://")):
        raise ConfigError(
            f"admin_base_url (ADMIN_URL): expected a URL such as https://mail.example.com/admin/, "
            f"got {config.admin_base_url!r}"
        )
    if config.oidc_issuer and not config.oidc_client_id:
        raise ConfigError(
            "oidc_issuer is set but oidc_client_id is empty: set the client ID the provider "
            "issued (or empty oidc_issuer to turn single sign-on off)"
        )
    parse_role_map(config.oidc_role_map)


def parse_role_map(text: str) -> dict[str, str]:
    """``"group=role,group2=role"`` as a mapping (a group may itself contain ``=``: the
    role is after the last one)."""
    mapping: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        group, sep, role = item.rpartition("=")
        group, role = group.strip(), role.strip()
        if not sep or not group or not role:
            raise ConfigError(
                f"oidc_role_map: expected group=role entries separated by commas, got {item!r}"
            )
        if group in mapping:
            raise ConfigError(f"oidc_role_map: group {group!r} is mapped twice")
        mapping[group] = role
    return mapping
