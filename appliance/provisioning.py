"""First-run set-up: secret key, first tenant, first admin, first API key.

``postyard init`` and the first ``postyard serve`` on an empty data
directory call ``initialize``. The admin password and the API key are
returned once and never stored in clear.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from argon2 import PasswordHasher

from appliance.config import Config
from appliance.domain import scopes
from appliance.domain.api_key_format import ApiKeySecret
from appliance.domain.secret_box import SecretBox
from appliance.store.store import Store

SECRET_KEY_FILE = "secret.key"
DEFAULT_ADMIN_EMAIL = "admin@postyard.local"


class AlreadyInitialized(Exception):
    """init was asked for on a store that already has tenants or users."""


@dataclass(frozen=True, slots=True)
class InitResult:
    admin_url: str
    admin_email: str
    admin_password: str
    tenant_id: str
    api_key: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def secret_key_path(config: Config) -> Path:
    return config.data_dir / SECRET_KEY_FILE


def ensure_secret_key(config: Config) -> None:
    """Create ``<data_dir>/secret.key`` (mode 0600) unless a key is configured or exists."""
    if config.secret_key:
        return
    path = secret_key_path(config)
    if path.exists():
        return
    config.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(SecretBox.generate_key() + b"\n")


def load_secret_box(config: Config) -> SecretBox:
    if config.secret_key:
        return SecretBox([k.strip().encode() for k in config.secret_key.split(",") if k.strip()])
    path = secret_key_path(config)
    try:
        lines = path.read_bytes().split()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"secret key file {path} is missing: run `postyard init` for a new data directory, "
            "or restore the file from your backup (secrets stored with it cannot be read "
            "without it)"
        ) from None
    return SecretBox([line for line in lines if line])


async def is_initialized(store: Store) -> bool:
    return await store.tenants.count() > 0 or await store.users.count() > 0


async def create_full_access_key(store: Store, tenant_id: str, name: str) -> str:
    secret = ApiKeySecret.generate()
    await store.api_keys.create(
        key_id=secret.key_id,
        tenant_id=tenant_id,
        name=name,
        scopes=scopes.ALL_SCOPES,
        secret_hash=secret.secret_hash(),
        created_by="postyard-cli",
    )
    return secret.token


async def initialize(
    config: Config,
    store: Store,
    *,
    admin_email: str = DEFAULT_ADMIN_EMAIL,
    tenant_name: str = "Default",
) -> InitResult:
    if await is_initialized(store):
        raise AlreadyInitialized(
            "this appliance is already initialised; the first admin password and API key were "
            "shown when it was. Create another key with `postyard api-key create`."
        )
    ensure_secret_key(config)
    tenant = await store.tenants.create(tenant_name)
    password = secrets.token_urlsafe(15)
    await store.users.create(
        email=admin_email,
        role="owner",
        password_hash=PasswordHasher().hash(password),
        name="Administrator",
    )
    token = await create_full_access_key(store, tenant.id, "First key (postyard init)")
    return InitResult(config.admin_url, admin_email, password, tenant.id, token)
