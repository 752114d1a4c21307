"""Smoke test of the one-file binary (``bash build/build.sh`` makes ``dist/postyard``).

Runs only when ``POSTYARD_BINARY`` names the built file. The binary serves a
fresh data dir (SQLite), resolves through the test DNS server and delivers to
the scripted MX, all on 127.0.0.1: a domain is created and verified through
``/api/admin/domains``, a message sent with the printed API key arrives at the
MX, and SIGTERM ends the process with status 0. Size and cold start to a ready
``/readyz`` are printed (``-s`` shows them), never asserted.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.support.delivery import RECIPIENT_DOMAIN, delivery_zones
from tests.support.dns_server import DnsServer, Zones, txt
from tests.support.mx_fixtures import run_scripted_mx

BINARY = os.environ.get("POSTYARD_BINARY", "")
pytestmark = pytest.mark.skipif(
    not BINARY,
    reason="POSTYARD_BINARY is not set: build with `bash build/build.sh`, then run "
    "POSTYARD_BINARY=dist/postyard .venv/bin/python -m pytest tests/binary",
)

SENDER = "shop.test"
STARTUP_TIMEOUT = 60  # a onefile binary unpacks itself first; a slow CI machine is slower
API_KEY_LINE = re.compile(r"^\s*API key:\s+(SG\.\S+)\s*$", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _text(path: Path) -> str:
    return path.read_text(errors="replace")


def _binary() -> Path:
    binary = Path(BINARY).resolve()
    assert binary.is_file(), f"POSTYARD_BINARY={BINARY} is not a file; build it first"
    return binary


def _signal_group(pid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


async def _stop_group(process: trio.Process) -> None:
    """End what is left of the binary's process group after a failure.

    A onefile binary is two processes; killing only the parent would orphan the
    child. SIGTERM first, so the parent removes its unpacked folder, then SIGKILL.
    """
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        with trio.move_on_after(10):
            await process.wait()
    _signal_group(process.pid, signal.SIGKILL)
    await process.wait()


def _publish(zones: Zones, records: list[dict[str, Any]]) -> None:
    for r in records:
        if r["type"] == "MX":
            zones.set(r["host"], "MX", f"{r['priority']} {r['value']}.")
        else:
            zones.set(r["host"], "TXT", txt(*r.get("strings", [r["value"]])))


async def _wait_ready(process: trio.Process, base_url: str, stderr_path: Path) -> tuple[str, float]:
    """Poll until /readyz answers 200 and the API key is printed; (key, seconds)."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
        with trio.move_on_after(STARTUP_TIMEOUT):
            while process.returncode is None:
                try:
                    ready = (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    ready = False
                if ready:
                    elapsed = time.monotonic() - started
                    found = API_KEY_LINE.search(_text(stderr_path))
                    assert found, f"no 'API key:' line on stderr:\n{_text(stderr_path)}"
                    return found.group(1), elapsed
                await trio.sleep(0.05)
    raise AssertionError(
        f"the binary was not ready within {STARTUP_TIMEOUT} s (exit status "
        f"{process.returncode}); its stderr:\n{_text(stderr_path)}"
    )


async def test_binary_serves_verifies_a_domain_delivers_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    binary = _binary()
    dns = DnsServer(delivery_zones())
    async with trio.open_nursery() as nursery:
        await nursery.start(dns.serve)
        async with run_scripted_mx(tmp_path / "mx") as mx:
            port = _free_port()
            base_url = f"http://127.0.0.1:{port}"
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(tmp_path),
                "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
                "POSTYARD_DATA_DIR": str(tmp_path / "data"),
                "POSTYARD_HTTP_LISTEN": f"127.0.0.1:{port}",
                "POSTYARD_INBOUND_LISTEN": "127.0.0.1:0",
                "POSTYARD_SUBMISSION_LISTEN": "127.0.0.1:0",
                "POSTYARD_DNS_NAMESERVERS": dns.address,
                "POSTYARD_SMTP_PORT": str(mx.port),
                "POSTYARD_HOSTNAME": "mx.postyard.test",
                "POSTYARD_SPF_INCLUDE": "_spf.postyard.test",
                "POSTYARD_OUTBOUND_IPS": "192.0.2.10",
            }
            stderr_path = tmp_path / "binary.stderr"
            stdout_path = tmp_path / "binary.stdout"
            with stderr_path.open("wb") as err, stdout_path.open("wb") as out:
                process = await trio.lowlevel.open_process(
                    [str(binary), "serve"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # its own group: the onefile child dies with it
                )
            try:
                api_key, cold_start = await _wait_ready(process, base_url, stderr_path)
                print(
                    f"\nbinary size: {binary.stat().st_size / 2**20:.1f} MB; "
                    f"cold start to ready /readyz: {cold_start:.2f} s"
                )
                auth = {"Authorization": f"Bearer {api_key}"}
                async with httpx.AsyncClient(base_url=base_url, timeout=15) as http:
                    created = await http.post(
                        "/api/admin/domains", headers=auth, json={"domain": SENDER}
                    )
                    assert created.status_code == 201, created.text
                    domain = created.json()
                    _publish(dns.zones, domain["dns_records"])
                    checked = await http.post(
                        f"/api/admin/domains/{domain['id']}/verify", headers=auth
                    )
                    assert checked.status_code == 200, checked.text
                    assert checked.json()["verified"] is True, checked.json()

                    sent = await http.post(
                        "/v3/mail/send",
                        headers=auth,
                        json={
                            "personalizations": [{"to": [{"email": f"rcpt@{RECIPIENT_DOMAIN}"}]}],
                            "from": {"email": f"app@{SENDER}"},
                            "subject": "From the binary",
                            "content": [{"type": "text/plain", "value": "Hello from dist."}],
                        },
                    )
                    assert sent.status_code == 202, sent.text
                received = await mx.wait_received(1, timeout=30)
                assert received[0]["rcpt_tos"] == [f"rcpt@{RECIPIENT_DOMAIN}"]
                data = received[0]["data"].encode("latin-1")
                assert b"Subject: From the binary" in data
                assert b"DKIM-Signature:" in data
                assert b"Hello from dist." in data

                process.send_signal(signal.SIGTERM)
                with trio.fail_after(30):
                    status = await process.wait()
                assert status == 0, _text(stderr_path)
            finally:
                await _stop_group(process)
        nursery.cancel_scope.cancel()
