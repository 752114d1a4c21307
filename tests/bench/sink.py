"""Postfix's ``smtp-sink`` (C, one process) as the recipient MX of the benchmarks.

Both Postfix and Postyard deliver to the same sink, so the sink's own cost is
the same for both and small. ``smtp-sink -c`` prints running counters on
stdout (``sess=… quit=… mesg=N`` separated by CR); a trio task reads them and
notes when each new count arrived, so a benchmark waits for "N more messages
received" and reads the time of the last one. With ``dump`` every message is
also written to a file in that directory (to check a DKIM signature).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
_MSG = re.compile(rb"mesg=(\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CountingSink:
    port: int
    dump: Path | None
    count: int = 0
    last_at: float = 0.0
    changed: trio.Event = field(default_factory=trio.Event)

    async def wait_for(self, count: int, timeout: float = 600) -> float:
        """Wait until ``count`` messages were received in all; the perf_counter of the last."""
        with trio.fail_after(timeout):
            while self.count < count:
                self.changed = trio.Event()
                await self.changed.wait()
        return self.last_at

    def dumped(self) -> list[Path]:
        return sorted(self.dump.iterdir()) if self.dump else []

    async def _read(self, stream: trio.abc.ReceiveStream) -> None:
        tail = b""
        while chunk := await stream.receive_some(65536):
            tail = (tail + chunk)[-256:]
            found = _MSG.findall(tail)
            if found and int(found[-1]) != self.count:
                self.count, self.last_at = int(found[-1]), time.perf_counter()
                self.changed.set()


def _writable_by_all(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o777)  # smtp-sink writes as nobody


@asynccontextmanager
async def counting_sink(dump: Path | None = None) -> AsyncIterator[CountingSink]:
    """smtp-sink on 127.0.0.1 with up to 1,000 connections; stopped on exit."""
    port = free_port()
    command = [SMTP_SINK, "-c"]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]
    if dump is not None:
        _writable_by_all(dump)
        command += ["-d", f"{dump}/%H%M%S."]
    command += [f"127.0.0.1:{port}", "1000"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    sink = CountingSink(port, dump)
    try:
        async with trio.open_nursery() as nursery:
            assert process.stdout is not None
            nursery.start_soon(sink._read, process.stdout)
            with trio.fail_after(10):
                while True:
                    try:
                        await (await trio.open_tcp_stream("127.0.0.1", port)).aclose()
                        break
                    except OSError:
                        await trio.sleep(0.05)
            # That probe was a session, not a message: msg stays 0.
            yield sink
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            process.terminate()
            await process.wait()
