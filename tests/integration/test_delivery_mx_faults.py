"""Recipient MX hosts that misbehave: each fault ends in DEFERRED with an error that names it,
the message is retried, other destinations are unaffected and no worker stays stuck.

The faults come from the scripted aiosmtpd MX (tests/support/scripted_mx.py)
by recipient local part (hang after DATA, reset mid-DATA, reset after the
data, garbage, a malformed multi-line reply) and from a second instance on
[::1] at the same port that greets and then never answers (``stuck.test``).
The per-step deadlines are the operator's settings (``smtp_command_timeout``,
``smtp_data_end_timeout``), here 2 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from appliance.domain.message_status import MessageStatus
from appliance.store.messages import Message
from tests.support.delivery import DeliverySetup, delivery_setup
from tests.support.mx_fixtures import run_scripted_mx

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TIMEOUT = 2.0
# recipient -> words its error_message must contain (what happened, at which step)
FAULTS = {
    "hang@example.test": ("did not reply within 2 s", "smtp_data_end_timeout", "during data"),
    "resetmid@example.test": ("broke", "reset by peer", "during data"),
    "resetdata@example.test": ("broke", "reset by peer", "during data"),
    "garbage@example.test": ("broke the SMTP protocol", "not smtp", "during rcpt"),
    "malformed@example.test": ("broke the SMTP protocol", "multi-line 250 reply", "during rcpt"),
    "someone@stuck.test": ("did not reply within 2 s", "smtp_command_timeout", "during ehlo"),
}


async def _by_recipient(setup: DeliverySetup, x_ids: list[str]) -> dict[str, Message]:
    found: dict[str, Message] = {}
    for x_id in x_ids:
        found.update({m.recipient: m for m in await setup.messages(x_id)})
    return found


@pytest.mark.slow
async def test_hanging_resetting_and_garbling_mx_hosts_defer_retry_and_free_their_workers(
    tmp_path: Path, database_url: str
) -> None:
    async with delivery_setup(
        tmp_path,
        database_url,
        smtp_command_timeout=TIMEOUT,
        smtp_data_end_timeout=TIMEOUT,
        smtp_retry_base_delay=1,
        smtp_max_retries=20,
        destination_connections=1,
        heartbeat_interval=0.2,
    ) as setup:
        zones = setup.dns.zones
        zones.set("fine.test", "MX", "10 mx.fine.test.")
        zones.set("mx.fine.test", "A", "127.0.0.1")
        zones.set("stuck.test", "MX", "10 mx.stuck.test.")
        zones.set("mx.stuck.test", "AAAA", "::1")
        async with run_scripted_mx(
            tmp_path / "stuck-mx", host="::1", port=setup.mx.port, hang_after_greeting=True
        ) as stuck:
            started = trio.current_time()
            faulty = await setup.send(list(FAULTS))
            fine = await setup.send([f"ok{i}@fine.test" for i in range(10)])

            settled = await setup.wait_settled(fine, timeout=TIMEOUT)
            assert {m.status for m in settled.values()} == {MessageStatus.DELIVERED}
            fine_seconds = trio.current_time() - started

            with trio.fail_after(60):
                while True:
                    messages = await _by_recipient(setup, [faulty])
                    if all(m.attempts >= 2 for m in messages.values()):
                        break
                    await trio.sleep(0.2)
            for recipient, words in FAULTS.items():
                message = messages[recipient]
                print(f"\n{recipient}: {message.status} {message.attempts} {message.error_message}")
                assert message.status in (MessageStatus.DEFERRED, MessageStatus.SENDING)
                error = (message.error_message or "").lower()
                for word in words:
                    assert word.lower() in error, (recipient, message)
            assert any(e["event"] == "hang" for e in stuck.log())
            data_faults = {e["behaviour"] for e in setup.mx.log() if e["event"] == "data"}
            assert {"hang", "resetmid", "resetdata"} <= data_faults, data_faults

            # The destination with the faults still delivers over its one connection.
            late = await setup.send(["late@example.test"])
            settled = await setup.wait_settled(late, timeout=4 * TIMEOUT)
            assert settled["late@example.test"].status is MessageStatus.DELIVERED

            # No worker left behind: in flight drops to nothing between retries.
            with trio.fail_after(30):
                while True:
                    body = (await setup.http.get("/readyz")).json()
                    delivery = body["services"]["delivery"]
                    if delivery["details"]["in_flight_here"] == 0:
                        break
                    await trio.sleep(0.1)
            assert body["status"] == "ready", body
    received = {r for m in setup.mx.received() for r in m["rcpt_tos"]}
    assert received == {f"ok{i}@fine.test" for i in range(10)} | {"late@example.test"}
    print(f"fine.test delivered in {fine_seconds:.2f} s while the faulty hosts hung")
