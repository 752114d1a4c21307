"""Shared fixtures: databases on both engines, a running appliance, HTTP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from appliance.store.store import Store
from tests.support.appliance import RunningAppliance, appliance_config, run_appliance
from tests.support.databases import fresh_database
from tests.support.smtp_sink import start_sink  # noqa: F401  (fixture: an aiosmtpd sink)

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each engine (PostgreSQL skipped when unreachable)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s = await Store.open(database_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
async def appliance(tmp_path: Path, sqlite_url: str) -> AsyncIterator[RunningAppliance]:
    """The whole appliance on SQLite with HTTP on a free loopback port."""
    async with run_appliance(appliance_config(tmp_path / "data", sqlite_url)) as running:
        yield running


@pytest.fixture
async def appliance_any_db(tmp_path: Path, database_url: str) -> AsyncIterator[RunningAppliance]:
    """The whole appliance, once per database engine."""
    async with run_appliance(appliance_config(tmp_path / "data", database_url)) as running:
        yield running


@pytest.fixture
async def http(appliance: RunningAppliance) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=appliance.base_url, timeout=10) as client:
        yield client
