"""PostgreSQL restarted under a running ``postyard serve``: no accepted message is lost and the
appliance recovers by itself (services restart, /readyz is green again).

The test restarts the machine's PostgreSQL server once (``pg_ctlcluster <version>
<cluster> restart -m fast`` of the Debian cluster on the test server's port, else
``service postgresql restart``). It runs only where it may: as root, with one of
those commands, against a server on this machine; otherwise it is skipped with
the reason. ``POSTYARD_TEST_NO_PG_RESTART=1`` skips it (other PostgreSQL tests
running at the same time see the restart too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import trio

from tests.support.databases import PG_ADMIN_URL, fresh_database
from tests.support.delivery import delivery_zones
from tests.support.dns_server import DnsServer
from tests.support.mx_fixtures import run_scripted_mx
from tests.support.serve_process import (
    MailLoad,
    ServeNode,
    fault_scale,
    free_port,
    prepare_store,
    serve_env,
    sink_message_ids,
    statuses_by_recipient,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def restart_command() -> list[str]:
    """The command that restarts the test PostgreSQL server, or skip saying why there is none."""
    if os.environ.get("POSTYARD_TEST_NO_PG_RESTART", "") not in ("", "0"):
        pytest.skip("POSTYARD_TEST_NO_PG_RESTART is set")
    server = urlsplit(PG_ADMIN_URL)
    if server.hostname not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip(f"PostgreSQL at {server.hostname} is not on this machine: cannot restart it")
    if os.geteuid() != 0:
        pytest.skip("restarting PostgreSQL needs root (pg_ctlcluster / service)")
    port = str(server.port or 5432)
    if shutil.which("pg_lsclusters") and shutil.which("pg_ctlcluster"):
        listing = subprocess.run(
            ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
        ).stdout
        for line in listing.splitlines():
            version, cluster, cluster_port, status, *_ = line.split()
            if cluster_port == port and status.startswith("online"):
                return ["pg_ctlcluster", version, cluster, "restart", "-m", "fast"]
    if shutil.which("service"):
        return ["service", "postgresql", "restart"]
    pytest.skip(f"no pg_ctlcluster cluster on port {port} and no `service` command")


async def test_postgresql_restarted_mid_run_loses_nothing_and_serve_recovers(
    tmp_path: Path,
) -> None:
    command = restart_command()
    total = fault_scale(600, 2000)
    dns = DnsServer(delivery_zones())
    with fresh_database("postgresql", tmp_path) as url:
        async with trio.open_nursery() as nursery:
            await nursery.start(dns.serve)
            async with run_scripted_mx(tmp_path / "mx") as mx:
                key = await prepare_store(url, tmp_path / "data")
                node = ServeNode(
                    serve_env(
                        data=tmp_path / "data",
                        database_url=url,
                        http_port=free_port(),
                        dns=dns.address,
                        mx_port=mx.port,
                        lease_duration="10",
                        destination_rate="200",
                    ),
                    tmp_path / "serve.log",
                )
                load = MailLoad(key, total, per_request=20, pause=0.05)
                try:
                    async with httpx.AsyncClient(base_url=node.base_url, timeout=10) as http:
                        node.start()
                        await node.wait_ready(http, path="/readyz")
                        async with trio.open_nursery() as sender:
                            sender.start_soon(load.run, http)
                            with trio.fail_after(60):
                                while len(mx.received()) < total // 4:
                                    await trio.sleep(0.01)
                            started = trio.current_time()
                            restarted = await trio.run_process(
                                command, capture_stdout=True, capture_stderr=True, check=False
                            )
                            assert restarted.returncode == 0, restarted.stderr.decode()
                            restart_seconds = trio.current_time() - started
                            recovery = await node.wait_ready(http, path="/readyz")
                        with trio.fail_after(120):
                            while not load.accepted <= {
                                r for m in mx.received() for r in m["rcpt_tos"]
                            }:
                                await trio.sleep(0.25)
                            while set((await statuses_by_recipient(url)).values()) != {"DELIVERED"}:
                                await trio.sleep(0.25)
                        ready = (await http.get("/readyz")).json()
                finally:
                    node.stop()
                received = mx.received()
            nursery.cancel_scope.cancel()
        stored = await statuses_by_recipient(url)
    counts = sink_message_ids(received)
    restarts = {name: s["restarts"] for name, s in ready["services"].items()}
    print(
        f"\nPostgreSQL restart ({' '.join(command)}) took {restart_seconds:.2f} s; /readyz green "
        f"{recovery:.2f} s later; service restarts {restarts}; answers {dict(load.answers)}; "
        f"{len(counts)} delivered, {sum(counts.values()) - len(counts)} sent again"
    )
    assert ready["status"] == "ready"
    assert len(load.accepted) == total
    assert load.accepted <= set(stored) <= load.accepted | load.unknown
    assert len(counts) == len(stored), "every stored message was delivered"
    assert Counter(stored.values()) == {"DELIVERED": len(stored)}
    assert sum(counts.values()) - len(counts) <= 100, "resent only what was in flight"
