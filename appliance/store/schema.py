"""The store's tables, in SQLAlchemy Core. Alembic migrations mirror this file.

Times are Unix seconds as floats (``*_at``): one representation on SQLite
and PostgreSQL, cheap to index and compare. Public ids are prefixed,
time-ordered strings (see ``domain.ids``).

The queue is the ``messages`` table. A message is claimable when its status
is QUEUED or DEFERRED and ``due_at`` has passed; a claim sets a lease
(``lease_owner``, ``lease_until``) so a crashed node's claims return to the
queue. The partial index ``ix_messages_due`` holds only claimable rows, so
claiming stays cheap however many delivered rows the table keeps.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)

from appliance.domain.stats_metrics import METRICS

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# An auto-incrementing 64-bit key: BIGSERIAL on PostgreSQL, ROWID alias on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

CLAIMABLE_STATUSES = ("QUEUED", "DEFERRED")
IN_FLIGHT_STATUSES = ("PROCESSING", "RENDERED", "SENDING")

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("suspended_reason", Text),
    Column("created_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("password_hash", Text),
    Column("role", String(64), nullable=False),
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE")),
    Column("totp_secret", Text),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", Float),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", Float, nullable=False),
    # OpenID Connect users: the provider's issuer and subject identify them (not the email).
    Column("oidc_issuer", String(500)),
    Column("oidc_subject", String(255)),
    Column("last_login_at", Float),
    Index("ix_users_oidc", "oidc_issuer", "oidc_subject", unique=True),
)

# Admin UI roles: a name and the permissions (scope names) it grants. Built-in roles are
# created by migration and may not be deleted; their permissions can be edited.
roles = Table(
    "roles",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", String(250), nullable=False, server_default=""),
    Column("permissions", Text, nullable=False),  # JSON list of permission names
    Column("builtin", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Browser sessions of the admin UI. Only the token's SHA-256 is stored; ``mfa_pending``
# sessions have passed the password but not yet the TOTP code.
admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="SET NULL")),
    Column("csrf_token", String(64), nullable=False),
    Column("mfa_pending", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("remote_addr", String(64)),
    Index("ix_admin_sessions_user", "user_id"),
)

# The staging mailbox (``postyard serve --capture``): outbound mail is kept here, as sent,
# instead of going to the recipients' MX hosts.
captured_messages = Table(
    "captured_messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", String(32), nullable=False),
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("mail_from", String(320), nullable=False),
    Column("rcpt_to", String(320), nullable=False),
    Column("subject", Text, nullable=False, server_default=""),
    Column("size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("captured_at", Float, nullable=False),
    Index("ix_captured_messages_tenant", "tenant_id", "captured_at"),
    Index("ix_captured_messages_message", "message_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column(
        "tenant_id",
        String(32),
        ForeignKey("tenants.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(100), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", Text, nullable=False),  # JSON list of scope names
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("created_by", String(64)),
)

send_requests = Table(
    "send_requests",
    metadata,
    Column("id", String(32), primary_key=True),  # also the X-Message-Id
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # the validated request, compressed JSON
    Column("message_count", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("request_id", String(32), ForeignKey("send_requests.id"), nullable=False),
    Column("personalization", Integer, nullable=False, server_default="0"),
    Column("recipient", String(320), nullable=False),
    Column("recipient_domain", String(255), nullable=False),
    Column("from_email", String(320), nullable=False),
    Column("subject", Text),
    Column("category", String(255)),  # first category, for filtering
    Column("batch_id", String(64)),
    Column("status", String(16), nullable=False),
    Column("due_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    Column("last_reply", Text),
    Column("error_message", Text),
    Column("sandbox", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index(
        "ix_messages_due",
        "due_at",
        postgresql_where=text("status IN ('QUEUED', 'DEFERRED')"),
        sqlite_where=text("status IN ('QUEUED', 'DEFERRED')"),
    ),
    Index(
        "ix_messages_lease",
        "lease_until",
        postgresql_where=text("lease_owner IS NOT NULL"),
        sqlite_where=text("lease_owner IS NOT NULL"),
    ),
    Index("ix_messages_tenant_created", "tenant_id", "created_at"),
    Index("ix_messages_tenant_recipient", "tenant_id", "recipient"),
    Index("ix_messages_request", "request_id"),
)

events = Table(
    "events",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("tenant_id", String(32), nullable=False),
    Column("message_id", String(32)),
    Column("event_type", String(32), nullable=False),
    Column("recipient", String(320)),
    Column("created_at", Float, nullable=False),
    Column("data", Text, nullable=False),  # JSON: the rest of the event payload
    Index("ix_events_message", "message_id"),
    Index("ix_events_tenant_created", "tenant_id", "created_at"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    # bounces | blocks | spam_reports | invalid_emails | unsubscribes
    Column("list_name", String(32), nullable=False),
    Column("email", String(320), nullable=False),  # normalised (domain lowercased)
    Column("reason", Text),
    Column("status", String(64)),  # enhanced status code for bounces and blocks
    Column("message_id", String(32)),  # the message whose outcome added it, if any
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("tenant_id", "email", "list_name"),
    Index("ix_suppressions_list_created", "tenant_id", "list_name", "created_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),  # SHA-256 of method, path and body
    Column("status_code", Integer, nullable=False),
    Column("response_headers", Text, nullable=False),  # JSON object
    Column("response_body", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    PrimaryKeyConstraint("tenant_id", "key"),
)

mail_batches = Table(
    "mail_batches",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False, server_default="active"),  # active|pause|cancel
    Column("created_at", Float, nullable=False),
)

domains = Table(
    "domains",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(253), nullable=False, unique=True),  # lowercased, IDNA (A-label)
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    Column("verified", Boolean, nullable=False, server_default=text("false")),
    Column("verified_at", Float),
    Column("last_checked_at", Float),
    Column("last_check", Text),  # JSON: per-record results of the last verification
    Column("ownership_token", String(64), nullable=False),
    Column("bounce_subdomain", String(63), nullable=False, server_default="bounces"),
    Column("dkim_selector", String(63), nullable=False),
    Column("dkim_algorithm", String(32), nullable=False),  # rsa-sha256 | ed25519-sha256
    Column("dkim_private_key", Text, nullable=False),  # encrypted with the secret box
    Column("dkim_public_txt", Text, nullable=False),
    # A rotation stages the new key here; it replaces the current one once its
    # DNS record verifies, so signing never uses an unpublished key.
    Column("pending_dkim_selector", String(63)),
    Column("pending_dkim_algorithm", String(32)),
    Column("pending_dkim_private_key", Text),
    Column("pending_dkim_public_txt", Text),
    # Warm-up: set when the operator turns it on; daily caps rise from this day.
    Column("warmup_started_at", Float),
    # Reply forwarding: mail to this domain (its MX pointed at us) goes here.
    Column("forward_to", String(320)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_domains_tenant", "tenant_id"),
)

templates = Table(
    "templates",
    metadata,
    Column("id", String(64), primary_key=True),  # d-<32 hex> (dynamic) or a UUID (legacy)
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("generation", String(16), nullable=False),  # legacy | dynamic
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_templates_tenant", "tenant_id"),
)

template_versions = Table(
    "template_versions",
    metadata,
    Column("id", String(64), primary_key=True),  # UUID, as SendGrid
    Column(
        "template_id",
        String(64),
        ForeignKey("templates.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(100), nullable=False),
    Column("subject", Text, nullable=False, server_default=""),
    Column("html_content", Text, nullable=False, server_default=""),
    Column("plain_content", Text, nullable=False, server_default=""),
    Column("generate_plain_content", Boolean, nullable=False, server_default=text("true")),
    Column("active", Integer, nullable=False, server_default="0"),  # 1 = the version used
    Column("editor", String(16), nullable=False, server_default="code"),
    Column("test_data", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

relays = Table(
    "relays",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("host", String(253), nullable=False),
    Column("port", Integer, nullable=False),
    Column("tls_mode", String(16), nullable=False),  # starttls | implicit | none
    Column("verify_tls", Boolean, nullable=False, server_default=text("true")),
    Column("username", String(255)),
    Column("password", Text),  # encrypted with the secret box
    Column("auth_mechanism", String(16)),  # PLAIN | LOGIN | None (the best offered)
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

ip_pools = Table(
    "ip_pools",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),  # the send request's ip_pool_name
    Column("addresses", Text, nullable=False),  # JSON list of source IP addresses
    Column("relay_id", String(32), ForeignKey("relays.id", ondelete="SET NULL")),
    Column("warmup_started_at", Float),  # None: no warm-up caps
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Messages sent per day and scope ("pool:<name>", "domain:<name>"), for warm-up caps.
send_counters = Table(
    "send_counters",
    metadata,
    Column("scope", String(300), nullable=False),
    Column("day", String(10), nullable=False),  # UTC date, YYYY-MM-DD
    Column("count", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("scope", "day"),
)

# Every message our inbound server accepted: DSNs, complaints, auto-replies,
# forwarded replies. Kept whether or not it matched a message of ours, so an
# unmatched report is visible, never silently dropped.
inbound_reports = Table(
    "inbound_reports",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("received_at", Float, nullable=False),
    Column("remote_ip", String(64)),
    Column("envelope_from", String(320)),
    Column("envelope_to", Text, nullable=False),  # JSON list
    # hard | soft | block | complaint | delayed | not_a_bounce | forwarded
    Column("kind", String(16), nullable=False),
    Column("tenant_id", String(32)),
    Column("message_id", String(32)),  # the message it was matched to, if any
    Column("matched_by", String(16)),  # verp | header | message_id
    Column("recipient", String(320)),
    Column("status", String(32)),
    Column("diagnostic_code", Text),
    Column("reporting_mta", String(255)),
    Column("report", Text, nullable=False),  # JSON: the parser's full result
    Column("raw", LargeBinary, nullable=False),  # zlib-compressed message as received
    Index("ix_inbound_reports_received", "received_at"),
    Index("ix_inbound_reports_message", "message_id"),
)

# ---- events out: webhooks, statistics, unsubscribe groups ----------------

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("friendly_name", String(100)),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("event_types", Text, nullable=False, server_default="[]"),  # JSON list; [] = all
    Column("format", String(16), nullable=False, server_default="postyard"),  # | sendgrid
    Column("signed", Boolean, nullable=False, server_default=text("false")),
    Column("signing_public_key", Text),  # base64 DER (SubjectPublicKeyInfo), as SendGrid shows it
    Column("signing_private_key", Text),  # encrypted with the secret box
    Column("disabled_at", Float),  # set when sustained failure turned it off
    Column("disabled_reason", Text),
    Column("failing_since", Float),  # first failure of the current streak
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_webhooks_tenant", "tenant_id"),
)

# The transactional outbox: one row per (webhook, event), written in the same
# transaction as the event (store.event_log.append_events), deleted once the
# webhook's receiver has taken it. Disabled webhooks keep collecting rows, so
# re-enabling resumes where delivery stopped.
webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("webhook_id", String(32), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Index("ix_webhook_outbox_due", "webhook_id", "due_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("webhook_id", String(32), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("attempted_at", Float, nullable=False),
    Column("events", Integer, nullable=False),
    Column("status_code", Integer),  # None: no HTTP answer (refused, timeout, TLS)
    Column("latency_ms", Float),
    Column("error", Text),
    Column("response_snippet", Text),
    Column("test", Boolean, nullable=False, server_default=text("false")),
    Index("ix_webhook_deliveries_webhook", "webhook_id", "attempted_at"),
)

# Daily roll-up of events per tenant and category ("" = all mail), SendGrid's
# 16 metrics; kept current by store.event_log and rebuilt from events on demand.
STAT_METRICS = METRICS  # SendGrid's 16 metric names (domain.stats_metrics)

stats_daily = Table(
    "stats_daily",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("day", String(10), nullable=False),  # UTC, YYYY-MM-DD
    Column("category", String(255), nullable=False, server_default=""),
    *(Column(name, Integer, nullable=False, server_default="0") for name in STAT_METRICS),
    PrimaryKeyConstraint("tenant_id", "day", "category"),
)

asm_groups = Table(
    "asm_groups",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),  # SendGrid group ids are integers
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("description", String(250), nullable=False, server_default=""),
    Column("is_default", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", Float, nullable=False),
    Index("ix_asm_groups_tenant", "tenant_id"),
)

asm_group_suppressions = Table(
    "asm_group_suppressions",
    metadata,
    Column("tenant_id", String(32), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("group_id", BigId, ForeignKey("asm_groups.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),  # normalised like suppressions
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("group_id", "email"),
    Index("ix_asm_group_suppressions_email", "tenant_id", "email"),
)
