"""The aiosmtpd sink (``smtpsink_aiosmtpd.py``) as a subprocess fixture, for any test module.

    from tests.support.smtp_sink import StartSink  # the fixture is in tests/conftest.py

    async def test_x(start_sink: StartSink) -> None:
        sink = await start_sink("--auth", "user:pw")
        ...  # talk to 127.0.0.1:sink.port
        assert sink.received()[0]["rcpt_tos"] == [...]

Each sink writes what it accepted to a JSON-lines file, so a test asserts what
the server actually received; the fixture terminates every sink it started.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

SINK = Path(__file__).resolve().parent / "smtpsink_aiosmtpd.py"


@dataclass
class Sink:
    port: int
    output: Path

    def received(self) -> list[dict[str, Any]]:
        """Accepted messages, oldest first; ``content`` is the message as received."""
        if not self.output.exists():
            return []
        records = [json.loads(line) for line in self.output.read_text().splitlines()]
        for record in records:
            record["content"] = base64.b64decode(record.pop("content_b64"))
        return records


StartSink = Callable[..., Awaitable[Sink]]


@pytest.fixture
async def start_sink(tmp_path: Path) -> AsyncIterator[StartSink]:
    """``await start_sink(*options)`` starts a sink with those command-line options."""
    processes: list[trio.Process] = []

    async def start(*args: str) -> Sink:
        output = tmp_path / f"sink-{len(processes)}.jsonl"
        process = await trio.lowlevel.open_process(
            [sys.executable, str(SINK), "--output", str(output), *args],
            stdout=subprocess.PIPE,
        )
        processes.append(process)
        assert process.stdout is not None
        line = b""
        with trio.fail_after(15):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(1)
                assert chunk, "the sink exited before listening"
                line += chunk
        assert line.startswith(b"PORT ")
        return Sink(int(line.split()[1]), output)

    yield start
    for process in processes:
        process.terminate()
        with trio.move_on_after(5):
            await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()
