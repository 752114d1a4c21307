"""Everything a running appliance shares: configuration, store, secrets, health."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import trio

from appliance.admin_auth import SessionAuthenticator
from appliance.auth import KeyAuthenticator
from appliance.config import Config
from appliance.domain.secret_box import SecretBox
from appliance.health import HealthRegistry
from appliance.metrics import Metrics
from appliance.store.store import Store


@dataclass
class AppContext:
    config: Config
    store: Store
    secrets: SecretBox
    health: HealthRegistry
    metrics: Metrics
    authenticator: KeyAuthenticator
    sessions: SessionAuthenticator
    shutdown: trio.Event = field(default_factory=trio.Event)
    node_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    http_url: str | None = None  # set by the HTTP service once it listens
    # Bound addresses ("host:port") of the SMTP listeners, set by each once it listens.
    listeners: dict[str, str] = field(default_factory=dict)
    # Set when mail is accepted, so the delivery engine claims it now rather than at its next poll.
    queue_wakeup: trio.Event = field(default_factory=trio.Event)

    def wake_delivery(self) -> None:
        self.queue_wakeup.set()

    @classmethod
    def build(cls, config: Config, store: Store, secrets: SecretBox) -> AppContext:
        health = HealthRegistry(heartbeat_interval=config.heartbeat_interval)
        return cls(
            config=config,
            store=store,
            secrets=secrets,
            health=health,
            metrics=Metrics(health),
            authenticator=KeyAuthenticator(store, ttl=config.api_key_cache_ttl),
            sessions=SessionAuthenticator(store, config),
        )
