"""``postyard serve --capture`` as a newcomer runs it: a real process, a first message.

The process has no usable DNS server and no reachable SMTP port (both dead
loopback ports), so the message can only end DELIVERED through the capture
mailbox.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.test_cli import POSTYARD, _env, _wait_ready


def _dead_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _collect(stream: object, into: list[str]) -> threading.Thread:
    def run() -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _api_key(stderr: list[str], timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(stderr):
            if "API key:" in line:
                return line.split()[-1]
        time.sleep(0.05)
    pytest.fail("postyard serve printed no API key: " + "".join(stderr))


def test_serve_capture_prints_the_mailbox_and_keeps_the_first_message(
    tmp_path: Path, free_tcp_port: int
) -> None:
    url = f"http://127.0.0.1:{free_tcp_port}"
    proc = subprocess.Popen(
        [*POSTYARD, "serve", "--capture"],
        env=_env(
            POSTYARD_DATA_DIR=str(tmp_path / "fresh"),
            POSTYARD_HTTP_LISTEN=f"127.0.0.1:{free_tcp_port}",
            POSTYARD_INBOUND_LISTEN="127.0.0.1:0",
            POSTYARD_SUBMISSION_LISTEN="127.0.0.1:0",
            POSTYARD_DNS_NAMESERVERS=f"127.0.0.1:{_dead_port(socket.SOCK_DGRAM)}",
            POSTYARD_SMTP_PORT=str(_dead_port(socket.SOCK_STREAM)),
            POSTYARD_OUTBOUND_IPS="127.0.0.1",
            POSTYARD_HOSTNAME="postyard.test",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout: list[str] = []
    stderr: list[str] = []
    readers = [_collect(proc.stdout, stdout), _collect(proc.stderr, stderr)]
    try:
        _wait_ready(url, proc)
        auth = {"Authorization": f"Bearer {_api_key(stderr)}"}
        with httpx.Client(base_url=url, headers=auth, timeout=10) as http:
            assert http.get("/readyz").json()["capture_mode"] is True
            created = http.post("/api/admin/domains", json={"domain": "first.test"})
            assert created.status_code == 201, created.text
            sent = http.post(
                "/v3/mail/send",
                json={
                    "personalizations": [{"to": [{"email": "me@example.org"}]}],
                    "from": {"email": "hello@first.test"},
                    "subject": "My first message",
                    "content": [{"type": "text/plain", "value": "It works."}],
                },
            )
            assert sent.status_code == 202, sent.text
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                captures = http.get("/api/admin/captures").json()["captures"]
                if captures:
                    break
                time.sleep(0.1)
            assert [c["subject"] for c in captures] == ["My first message"]
            message = http.get(f"/v3/messages/{captures[0]['message_id']}").json()
            assert message["status"] == "DELIVERED"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        for reader in readers:
            reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(stderr)
    banner = "".join(stderr)
    assert (
        f"capture mode: outbound mail is kept in the built-in mailbox at {url}/admin/capture, "
        "nothing is delivered" in banner
    )
    events = [json.loads(line) for line in stdout if line.startswith("{")]
    ready = next(e for e in events if e["event"] == "postyard ready")
    assert ready["capture_mode"] is True
    notice = next(e for e in events if e["event"].startswith("capture mode:"))
    assert notice["level"] == "warning"
    assert "sending domains may send before their DNS records verify" in notice["event"]
