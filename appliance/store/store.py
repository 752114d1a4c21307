"""The ``Store``: one object with async methods, grouped by table family."""

from __future__ import annotations

import trio

from appliance.store import migrate
from appliance.store.admin_sessions import AdminSessions
from appliance.store.api_keys import ApiKeys
from appliance.store.asm_groups import AsmGroups
from appliance.store.batches import Batches
from appliance.store.captures import Captures
from appliance.store.changes import ChangeCounter
from appliance.store.database import Database
from appliance.store.domains import Domains
from appliance.store.event_ingest import EventIngestion
from appliance.store.idempotency import IdempotencyKeys
from appliance.store.inbound_reports import InboundReports
from appliance.store.ip_pools import IpPools
from appliance.store.messages import Messages
from appliance.store.queue import DeliveryQueue
from appliance.store.relays import Relays
from appliance.store.reputation import Reputation
from appliance.store.roles import Roles
from appliance.store.send_counters import SendCounters
from appliance.store.stats import Stats
from appliance.store.suppressions import Suppressions
from appliance.store.templates import Templates
from appliance.store.tenants import Tenants
from appliance.store.tracking import Tracking
from appliance.store.users import Users
from appliance.store.webhooks import Webhooks


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Bumped by every write to tenants or domains in this process (caches of the send rules).
        self.sending_rule_changes = ChangeCounter()
        self.tenants = Tenants(db, self.sending_rule_changes)
        self.users = Users(db)
        self.roles = Roles(db)
        self.admin_sessions = AdminSessions(db)
        self.api_keys = ApiKeys(db)
        self.messages = Messages(db)
        self.suppressions = Suppressions(db)
        self.idempotency = IdempotencyKeys(db)
        self.batches = Batches(db)
        self.domains = Domains(db, self.sending_rule_changes)
        self.templates = Templates(db)
        self.inbound_reports = InboundReports(db)
        self.relays = Relays(db)
        self.ip_pools = IpPools(db)
        self.queue = DeliveryQueue(db)
        self.send_counters = SendCounters(db)
        self.event_ingestion = EventIngestion(db)
        self.reputation = Reputation(db, self.sending_rule_changes)
        self.webhooks = Webhooks(db)
        self.asm_groups = AsmGroups(db)
        self.tracking = Tracking(db)
        self.stats = Stats(db)
        self.captures = Captures(db)

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 8, migrate_schema: bool = True) -> Store:
        """Connect and (by default) apply pending migrations."""
        db = Database(url, pool_size=pool_size)
        if migrate_schema:
            await trio.to_thread.run_sync(migrate.upgrade, db)
        return cls(db)

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def close(self) -> None:
        self.db.dispose()
