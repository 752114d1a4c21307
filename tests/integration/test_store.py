"""Store behaviour on both engines (SQLite file and a fresh PostgreSQL database)."""

from __future__ import annotations

import sqlalchemy as sa
import trio

from appliance.domain.api_key_format import ApiKeySecret
from appliance.store import migrate
from appliance.store.schema import messages
from appliance.store.store import Store


async def test_migrations_reach_head_and_rerun_as_a_no_op(store: Store) -> None:
    assert migrate.current_revision(store.db) == migrate.head_revision()
    await trio.to_thread.run_sync(migrate.upgrade, store.db)
    assert migrate.current_revision(store.db) == migrate.head_revision()


async def test_queue_index_holds_only_claimable_rows(store: Store) -> None:
    """The due index is partial: delivered rows never slow a claim down."""

    def index_sql(conn: sa.Connection) -> str:
        if conn.dialect.name == "sqlite":
            return str(
                conn.execute(
                    sa.text("SELECT sql FROM sqlite_master WHERE name = 'ix_messages_due'")
                ).scalar()
            )
        return str(
            conn.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_due'")
            ).scalar()
        )

    sql = await store.db.read(index_sql)
    assert "QUEUED" in sql and "DEFERRED" in sql and "due_at" in sql
    assert "due_at" in {c.name for c in messages.c}


async def test_tenants_create_get_count_and_suspend(store: Store) -> None:
    assert await store.tenants.count() == 0
    tenant = await store.tenants.create("Acme")
    assert tenant.id.startswith("tnt_")
    assert (await store.tenants.get(tenant.id)) == tenant
    assert await store.tenants.count() == 1
    assert await store.tenants.set_status(tenant.id, "suspended", "bounce rate 9 %")
    suspended = await store.tenants.get(tenant.id)
    assert suspended is not None and suspended.status == "suspended"
    assert suspended.suspended_reason == "bounce rate 9 %"
    assert await store.tenants.get("tnt_missing") is None


async def test_api_keys_are_isolated_per_tenant(store: Store) -> None:
    a = await store.tenants.create("A")
    b = await store.tenants.create("B")
    secret = ApiKeySecret.generate()
    key = await store.api_keys.create(
        key_id=secret.key_id,
        tenant_id=a.id,
        name="a-key",
        scopes=frozenset({"mail.send"}),
        secret_hash=secret.secret_hash(),
    )
    assert await store.api_keys.get(a.id, key.id) == key
    assert await store.api_keys.get(b.id, key.id) is None
    assert await store.api_keys.for_tenant(b.id) == []
    assert await store.api_keys.update(b.id, key.id, name="stolen") is None
    assert not await store.api_keys.delete(b.id, key.id)
    assert (await store.api_keys.get(a.id, key.id)) is not None


async def test_api_key_credentials_carry_hash_and_tenant_status(store: Store) -> None:
    tenant = await store.tenants.create("A")
    secret = ApiKeySecret.generate()
    await store.api_keys.create(
        key_id=secret.key_id,
        tenant_id=tenant.id,
        name="k",
        scopes=frozenset({"mail.send", "stats.read"}),
        secret_hash=secret.secret_hash(),
    )
    creds = await store.api_keys.credentials(secret.key_id)
    assert creds is not None
    assert creds.secret_hash == secret.secret_hash()
    assert creds.tenant_status == "active"
    assert creds.key.scopes == frozenset({"mail.send", "stats.read"})
    await store.api_keys.touch([secret.key_id], 1234.5)
    touched = await store.api_keys.get(tenant.id, secret.key_id)
    assert touched is not None and touched.last_used_at == 1234.5


async def test_api_key_update_and_delete(store: Store) -> None:
    tenant = await store.tenants.create("A")
    secret = ApiKeySecret.generate()
    await store.api_keys.create(
        key_id=secret.key_id,
        tenant_id=tenant.id,
        name="old",
        scopes=frozenset({"mail.send"}),
        secret_hash=secret.secret_hash(),
    )
    renamed = await store.api_keys.update(tenant.id, secret.key_id, name="new")
    assert renamed is not None and renamed.name == "new" and renamed.scopes == {"mail.send"}
    rescoped = await store.api_keys.update(
        tenant.id, secret.key_id, name="new", scopes=frozenset({"stats.read"})
    )
    assert rescoped is not None and rescoped.scopes == {"stats.read"}
    assert await store.api_keys.count(tenant.id) == 1
    assert await store.api_keys.delete(tenant.id, secret.key_id)
    assert await store.api_keys.count(tenant.id) == 0
    assert await store.api_keys.credentials(secret.key_id) is None


async def test_concurrent_writers_lose_nothing(store: Store) -> None:
    """Many tasks writing at once (one writer connection on SQLite, a pool on PostgreSQL)."""
    tenant = await store.tenants.create("A")

    async def add(i: int) -> None:
        secret = ApiKeySecret.generate()
        await store.api_keys.create(
            key_id=secret.key_id,
            tenant_id=tenant.id,
            name=f"k{i}",
            scopes=frozenset({"mail.send"}),
            secret_hash=secret.secret_hash(),
        )

    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(add, i)
    assert await store.api_keys.count(tenant.id) == 40
    assert len(await store.api_keys.for_tenant(tenant.id, limit=10)) == 10


async def test_migrations_match_the_schema_module(store: Store) -> None:
    """schema.py and the Alembic revisions describe the same tables on both engines."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from appliance.store.schema import metadata

    def diff(conn: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    assert await store.db.read(diff) == []
