"""Test helpers for sending: a verified sending domain for a tenant."""

from __future__ import annotations

import secrets

from appliance.domain.dkim_keys import DkimKeyPair, generate_key_pair
from appliance.store.domains import Domain, StoredDkimKey
from tests.support.appliance import RunningAppliance


async def verified_domain(
    app: RunningAppliance, name: str, tenant_id: str | None = None
) -> tuple[Domain, DkimKeyPair]:
    """A domain marked verified in the store, as a successful DNS check leaves it.

    (The DNS verification itself is tested end to end in test_domains_api.)
    """
    store = app.ctx.store
    pair = generate_key_pair()
    domain = await store.domains.create(
        tenant_id=tenant_id or app.init.tenant_id,
        name=name,
        ownership_token=secrets.token_hex(16),
        dkim=StoredDkimKey(
            pair.selector,
            pair.algorithm,
            app.ctx.secrets.encrypt(pair.private_key_pem),
            pair.public_txt,
        ),
    )
    checked = await store.domains.record_check(
        domain.tenant_id, domain.id, verified=True, result={"test": "verified by fixture"}
    )
    assert checked is not None and checked.can_send
    return checked, pair
