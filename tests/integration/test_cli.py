"""The ``postyard`` command as an operator runs it: real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

POSTYARD = [sys.executable, "-m", "appliance.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTYARD_")}
    env.pop("SMTP_MAX_RETRIES", None)
    env.pop("SMTP_RETRY_BASE_DELAY", None)
    return {**env, **extra}


def test_init_json_prints_the_public_contract_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = subprocess.run(
        [*POSTYARD, "init", "--json"],
        env=_env(POSTYARD_DATA_DIR=str(data)),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(out.stdout)
    assert set(result) == {"admin_url", "admin_email", "admin_password", "tenant_id", "api_key"}
    assert result["admin_url"] == "http://127.0.0.1:8080/admin/"
    assert result["api_key"].startswith("SG.") and result["tenant_id"].startswith("tnt_")
    assert (data / "postyard.db").exists()
    key_file = data / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert result["api_key"].encode() not in (data / "postyard.db").read_bytes()

    again = subprocess.run(
        [*POSTYARD, "init", "--json"],
        env=_env(POSTYARD_DATA_DIR=str(data)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1
    assert "already initialised" in again.stderr
    assert again.stdout == "", "no new credentials are printed"


def test_unknown_environment_key_stops_with_its_name(tmp_path: Path) -> None:
    out = subprocess.run(
        [*POSTYARD, "init"],
        env=_env(POSTYARD_HTTP_LISTNE="1"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "POSTYARD_HTTP_LISTNE" in out.stderr


def test_config_command_documents_every_key() -> None:
    out = subprocess.run(
        [*POSTYARD, "config"], capture_output=True, text=True, check=True, env=_env(), timeout=60
    )
    assert "POSTYARD_DATABASE_URL" in out.stdout and "SMTP_RETRY_BASE_DELAY" in out.stdout


def _wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "postyard serve exited early"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("postyard serve did not become ready")


def test_serve_on_empty_dir_initialises_serves_and_stops_on_sigterm(
    tmp_path: Path, free_tcp_port: int
) -> None:
    data = tmp_path / "fresh"
    url = f"http://127.0.0.1:{free_tcp_port}"
    proc = subprocess.Popen(
        [*POSTYARD, "serve"],
        env=_env(
            POSTYARD_DATA_DIR=str(data),
            POSTYARD_HTTP_LISTEN=f"127.0.0.1:{free_tcp_port}",
            POSTYARD_INBOUND_LISTEN="127.0.0.1:0",
            POSTYARD_SUBMISSION_LISTEN="127.0.0.1:0",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_ready(url, proc)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        stdout, stderr = proc.communicate(timeout=20)
        stop_seconds = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stop_seconds < 15
    assert f"Admin URL:      {url}/admin/" in stderr
    key = next(line.split()[-1] for line in stderr.splitlines() if "API key:" in line)
    assert key.startswith("SG.")
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert "postyard ready" in names and "shutdown complete" in names
    assert any(e.get("signal") == "SIGTERM" for e in events)
    assert all("SG." not in line for line in stdout.splitlines()), "keys never reach the logs"
