"""The scripted recipient MX (tests/support/scripted_mx.py) for trio tests.

``run_scripted_mx(directory)`` starts it in a subprocess and stops it on exit,
whatever happened inside; the pytest fixtures ``scripted_mx`` and
``scripted_mx_tls`` wrap it. Import them where they are used::

    from tests.support.mx_fixtures import scripted_mx  # noqa: F401

What the server does depends on the recipient's local part (``greylist…``,
``unknown…``, ``drop…``, …): see the table at the top of scripted_mx.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import trio

from tests.support.tls_certs import TlsCertificate, make_self_signed

SCRIPT = Path(__file__).resolve().with_name("scripted_mx.py")
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


class ScriptedMxStartupError(RuntimeError):
    """The scripted MX did not start listening; the message carries its stderr."""


@dataclass
class ScriptedMx:
    host: str
    port: int
    output: Path
    certificate: TlsCertificate | None = None
    stderr_path: Path | None = None
    process: trio.Process | None = field(default=None, repr=False, compare=False)

    @property
    def log_path(self) -> Path:
        return Path(f"{self.output}.log")

    def received(self) -> list[dict[str, Any]]:
        """One dict per accepted message (``data.encode("latin-1")`` is the content)."""
        return _read_json_lines(self.output)

    def log(self) -> list[dict[str, Any]]:
        """Every connect, starttls, rcpt, data and disconnect event so far."""
        return _read_json_lines(self.log_path)

    async def wait_received(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages were accepted; returns all of them."""
        received: list[dict[str, Any]] = []
        with trio.move_on_after(timeout):
            while True:
                received = self.received()
                if len(received) >= count:
                    return received
                await trio.sleep(0.02)
        recent = [
            (e["event"], e.get("recipient") or e.get("recipients"), e.get("reply"))
            for e in self.log()[-10:]
        ]
        raise TimeoutError(
            f"The scripted MX accepted {len(received)} of the {count} messages expected "
            f"within {timeout} s. Its last log events: {recent}"
        )


@asynccontextmanager
async def run_scripted_mx(
    tmp_path: Path,
    *,
    tls: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
    hang_after_greeting: bool = False,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> AsyncIterator[ScriptedMx]:
    """Run scripted_mx.py with its files in ``tmp_path`` (created if missing).

    With ``tls`` a self-signed certificate for localhost and 127.0.0.1 is made
    (``ScriptedMx.certificate.client_context()`` trusts it) and STARTTLS is
    offered. ``port`` 0 lets the OS choose; ``hang_after_greeting`` makes a
    server that greets and then never answers. Raises ScriptedMxStartupError
    if the server does not listen within ``startup_timeout`` seconds.
    """
    _make_directory(tmp_path)
    output = tmp_path / "received.jsonl"
    stderr_path = tmp_path / "scripted_mx.stderr"
    command = [sys.executable, str(SCRIPT), "--output", str(output), "--host", host]
    command += ["--port", str(port)]
    if hang_after_greeting:
        command.append("--hang-after-greeting")
    command.append("--exit-on-stdin-eof")  # no orphan if the test process dies
    certificate = None
    if tls:
        certificate = make_self_signed(tmp_path, name="scripted-mx")
        command += ["--tls-cert", str(certificate.cert_path)]
        command += ["--tls-key", str(certificate.key_path)]
    with _open_for_stderr(stderr_path) as stderr:
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
    try:
        port = await _read_port(process, host, stderr_path, startup_timeout)
        yield ScriptedMx(host, port, output, certificate, stderr_path, process)
    finally:
        await _stop(process)


@pytest.fixture
async def scripted_mx(tmp_path: Path) -> AsyncIterator[ScriptedMx]:
    """A scripted MX on 127.0.0.1 without STARTTLS."""
    async with run_scripted_mx(tmp_path / "scripted-mx") as mx:
        yield mx


@pytest.fixture
async def scripted_mx_tls(tmp_path: Path) -> AsyncIterator[ScriptedMx]:
    """A scripted MX on 127.0.0.1 offering STARTTLS with a self-signed certificate."""
    async with run_scripted_mx(tmp_path / "scripted-mx-tls", tls=True) as mx:
        yield mx


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file the server may be appending to."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    complete = raw[: raw.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line]


def _make_directory(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def _open_for_stderr(path: Path) -> IO[bytes]:
    # A file, not a pipe: a pipe nobody drains would block the server once full.
    return path.open("wb")


def _stderr_text(path: Path) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    return f"Its stderr:\n{text[-4000:]}" if text else "Its stderr was empty."


async def _read_port(process: trio.Process, host: str, stderr_path: Path, timeout: float) -> int:
    assert process.stdout is not None
    line = b""
    with trio.move_on_after(timeout):
        while not line.endswith(b"\n"):
            chunk = await process.stdout.receive_some(256)
            if not chunk:
                status = await process.wait()
                raise ScriptedMxStartupError(
                    f"The scripted MX ({SCRIPT}) exited with status {status} before listening "
                    f"on {host}. {_stderr_text(stderr_path)}"
                )
            line += chunk
    if not line.endswith(b"\n"):
        raise ScriptedMxStartupError(
            f"The scripted MX ({SCRIPT}) did not print 'PORT <n>' within {timeout} s "
            f"(output so far: {line!r}). {_stderr_text(stderr_path)}"
        )
    match = re.fullmatch(rb"PORT (\d+)\n", line)
    if match is None:
        raise ScriptedMxStartupError(
            f"The scripted MX ({SCRIPT}) printed {line!r} instead of 'PORT <n>'. "
            f"{_stderr_text(stderr_path)}"
        )
    return int(match[1])


async def _stop(process: trio.Process) -> None:
    """Terminate, then kill if need be; shielded so a cancelled or failed test still reaps it."""
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.terminate()
            with trio.move_on_after(STOP_TIMEOUT):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                await stream.aclose()
