"""What one attempt means for its message: status, event, suppression, sentence."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.domain.delivery_outcome import (
    Attempt,
    DeliveryOutcome,
    Route,
    SuppressionEntry,
    delivered,
    failed,
    refused,
    status_of,
)
from appliance.domain.message_status import MessageStatus
from appliance.domain.retry_schedule import RetryPolicy
from appliance.protocols.smtp_reply import Reply

NOW = 1_713_888_000.0  # 2024-04-23 16:00:00 UTC
EXACT = RetryPolicy(jitter=0)
MX = Route(mx_host="mx1.example.com", ip="192.0.2.10", tls=True, relay=None)
RELAY = Route(mx_host="smtp.relay.example", ip=None, tls=True, relay="corporate")


def attempt(before: int = 0) -> Attempt:
    return Attempt(
        message_id="msg_1",
        tenant_id="tnt_1",
        recipient="rcpt@example.com",
        x_message_id="req_1",
        attempts_before=before,
    )


def refuse(
    code: int, status: str | None, text: str, *, before: int = 0, route: Route = MX
) -> DeliveryOutcome:
    return refused(
        attempt(before),
        Reply.build(code, status, text),
        route,
        policy=EXACT,
        rng=random.Random(0),
        now=NOW,
    )


def fail(
    description: str, *, permanent: bool, status: str, before: int = 0, route: Route | None = MX
) -> DeliveryOutcome:
    return failed(
        attempt(before),
        description,
        route,
        permanent=permanent,
        status=status,
        policy=EXACT,
        rng=random.Random(0),
        now=NOW,
    )


# --- 2xx ---------------------------------------------------------------------------------------


def test_delivered() -> None:
    reply = Reply.build(250, "2.0.0", "Ok: queued as 4VQ")
    outcome = delivered(attempt(before=2), reply, MX, now=NOW)
    assert outcome == DeliveryOutcome(
        message_id="msg_1",
        tenant_id="tnt_1",
        recipient="rcpt@example.com",
        status=MessageStatus.DELIVERED,
        attempts=3,
        due_at=None,
        last_reply="250 2.0.0 Ok: queued as 4VQ",
        error_message=None,
        event_type="delivered",
        event_data={
            "smtp_response": "250 2.0.0 Ok: queued as 4VQ",
            "mx_host": "mx1.example.com",
            "ip": "192.0.2.10",
            "tls": True,
            "relay": None,
            "attempt": 3,
            "x_message_id": "req_1",
        },
    )


def test_delivered_through_a_relay_names_it() -> None:
    outcome = delivered(attempt(), Reply.build(250, None, "OK"), RELAY, now=NOW)
    assert outcome.event_data["relay"] == "corporate"
    assert outcome.event_data["mx_host"] == "smtp.relay.example"


@pytest.mark.parametrize("code", [354, 451, 550])
def test_delivered_needs_a_2xx_reply(code: int) -> None:
    with pytest.raises(ValueError, match="2xx"):
        delivered(attempt(), Reply.build(code, None, "x"), MX, now=NOW)


# --- 4xx ---------------------------------------------------------------------------------------


def test_4xx_defers_by_the_schedule() -> None:
    outcome = refuse(451, "4.3.0", "Temporary local problem", before=1)
    assert outcome.status is MessageStatus.DEFERRED
    assert outcome.attempts == 2
    assert outcome.due_at == NOW + 300
    assert outcome.suppression is None
    assert outcome.last_reply == "451 4.3.0 Temporary local problem"
    assert outcome.event_type == "deferred"
    assert outcome.event_data == {
        "attempt": 2,
        "smtp_response": "451 4.3.0 Temporary local problem",
        "reason": "Temporary local problem",
        "next_attempt_at": int(NOW + 300),
        "greylisted": False,
        "mx_host": "mx1.example.com",
        "x_message_id": "req_1",
    }
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("451 4.3.0 from mx1.example.com:")
    assert "attempt 2 of 6" in outcome.error_message
    assert "2024-04-23 16:05:00 UTC" in outcome.error_message


def test_greylisting_on_the_first_attempt_gets_the_short_retry() -> None:
    outcome = refuse(451, "4.7.1", "Greylisted, please try again later")
    assert outcome.status is MessageStatus.DEFERRED
    assert outcome.due_at == NOW + 90
    assert outcome.event_data["greylisted"] is True
    assert outcome.error_message is not None and "greylisting" in outcome.error_message


def test_greylisting_on_a_later_attempt_follows_the_schedule() -> None:
    outcome = refuse(451, "4.7.1", "Greylisted, please try again later", before=1)
    assert outcome.due_at == NOW + 300
    assert outcome.event_data["greylisted"] is True


@pytest.mark.parametrize(("code", "status"), [(451, "4.3.0"), (421, None)])
def test_4xx_after_the_last_retry_is_a_soft_bounce(code: int, status: str | None) -> None:
    outcome = refuse(code, status, "Try again later", before=5)  # the sixth attempt
    assert outcome.status is MessageStatus.BOUNCED
    assert outcome.attempts == 6
    assert outcome.due_at is None
    assert outcome.suppression is not None and outcome.suppression.list_name == "bounces"
    assert outcome.event_type == "bounce"
    data = outcome.event_data
    assert data["bounce_type"] == "soft"
    assert data["bounce_reason"] == (
        f"retries exhausted after 6 attempts; last reply: {outcome.last_reply}"
    )
    assert data["status"] == (status or "4.0.0")
    assert data["smtp_response"] == outcome.last_reply
    assert data["metadata"]["diagnostic_code"] == f"smtp; {outcome.last_reply}"
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("gave up after 6 attempts")
    assert "added to the bounce list as a soft bounce" in outcome.error_message


def test_no_retries_configured_bounces_the_first_4xx() -> None:
    outcome = refused(
        attempt(),
        Reply.build(451, "4.3.0", "later"),
        MX,
        policy=RetryPolicy(max_retries=0),
        rng=random.Random(0),
        now=NOW,
    )
    assert outcome.status is MessageStatus.BOUNCED
    assert "no retries are configured" in outcome.event_data["bounce_reason"]


@given(before=st.integers(min_value=0, max_value=4), seed=st.integers())
def test_deferral_is_due_within_the_jittered_step(before: int, seed: int) -> None:
    policy = RetryPolicy()
    outcome = refused(
        attempt(before),
        Reply.build(451, "4.3.0", "Temporary local problem"),
        MX,
        policy=policy,
        rng=random.Random(seed),
        now=NOW,
    )
    nominal = policy.nominal_delay(before + 1)
    assert nominal is not None and outcome.due_at is not None
    assert NOW + nominal * 0.9 <= outcome.due_at <= NOW + nominal * 1.1
    assert outcome.event_data["next_attempt_at"] == int(outcome.due_at)


# --- 5xx ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "text", "bounce_type", "list_name", "meaning"),
    [
        (550, "5.1.1", "User unknown", "hard", "bounces", "the mailbox does not exist"),
        (550, "5.1.10", "Recipient address has null MX", "hard", "bounces", "null MX"),
        (550, "5.2.1", "Mailbox disabled", "hard", "bounces", "the mailbox is disabled"),
        (552, "5.2.2", "Mailbox full", "soft", "bounces", "the mailbox is full"),
        (552, "5.3.4", "Message too big for system", "soft", "bounces", "too large"),
        (550, "5.7.1", "Message rejected by policy", "block", "blocks", "by policy"),
        (550, "5.7.26", "Unauthenticated email is not accepted", "block", "blocks", "DMARC"),
        (554, "5.7.606", "Access denied, banned sending IP", "block", "blocks", "refused mail"),
        # No enhanced code: the status is derived from the reply code.
        (550, None, "No such user here", "hard", "bounces", "cannot receive mail"),
        # A sloppy code with decisive words: the sentence follows the class, not the code.
        (550, "5.1.1", "Mailbox over quota", "soft", "bounces", "a reason that may pass"),
    ],
)
def test_5xx_bounces_by_class(
    code: int,
    status: str | None,
    text: str,
    bounce_type: str,
    list_name: str | None,
    meaning: str,
) -> None:
    outcome = refuse(code, status, text)
    full = str(Reply.build(code, status, text))
    expected_status = status or "5.0.0"
    assert outcome.status is MessageStatus.BOUNCED
    assert outcome.due_at is None
    assert outcome.last_reply == full
    assert outcome.event_type == "bounce"
    data = outcome.event_data
    assert data["bounce_type"] == bounce_type
    assert data["bounce_reason"] == text
    assert data["smtp_response"] == full
    assert data["status"] == expected_status
    if list_name is None:
        assert outcome.suppression is None
    else:
        assert outcome.suppression == SuppressionEntry(list_name, full, expected_status)
    assert outcome.error_message is not None
    assert outcome.error_message.startswith(
        f"{code} {status} from mx1.example.com: " if status else f"{code} from mx1.example.com: "
    )
    assert meaning in outcome.error_message


def test_bounce_event_matches_the_spec_example() -> None:
    outcome = refuse(550, "5.1.1", "User unknown")
    assert outcome.event_data == {
        "bounce_type": "hard",
        "bounce_reason": "User unknown",
        "smtp_response": "550 5.1.1 User unknown",
        "status": "5.1.1",
        "attempt": 1,
        "mx_host": "mx1.example.com",
        "x_message_id": "req_1",
        "metadata": {
            "diagnostic_code": "smtp; 550 5.1.1 User unknown",
            "remote_mta": "dns; mx1.example.com",
            "reporting_mta": "dns; mx1.example.com",
        },
    }
    assert outcome.error_message == (
        "550 5.1.1 from mx1.example.com: the mailbox does not exist; the address was added to "
        "the bounce list; check it, and delete it from /v3/suppression/bounces to send to it again"
    )


def test_a_relay_refusal_names_the_relay() -> None:
    outcome = refuse(550, "5.7.1", "Relaying denied", route=RELAY)
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("550 5.7.1 from relay corporate (smtp.relay.example):")
    assert outcome.event_data["metadata"]["reporting_mta"] == "dns; smtp.relay.example"


@pytest.mark.parametrize("code", [250, 354])
def test_refused_needs_a_failure_reply(code: int) -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        refuse(code, None, "OK")


# --- no reply ----------------------------------------------------------------------------------


def test_connection_failure_defers_without_an_smtp_response() -> None:
    outcome = fail("connection refused by mx1.example.com", permanent=False, status="4.4.1")
    assert outcome.status is MessageStatus.DEFERRED
    assert outcome.due_at == NOW + 60
    assert outcome.last_reply == "connection refused by mx1.example.com"
    assert outcome.event_data["smtp_response"] is None
    assert outcome.event_data["reason"] == "connection refused by mx1.example.com"
    assert outcome.event_data["greylisted"] is False
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("connection refused by mx1.example.com; attempt 1 of 6")


def test_connection_failure_after_the_last_retry_is_a_soft_bounce() -> None:
    outcome = fail("timed out", permanent=False, status="4.4.2", before=5, route=None)
    assert outcome.status is MessageStatus.BOUNCED
    assert outcome.suppression is not None and outcome.suppression.list_name == "bounces"
    data = outcome.event_data
    assert data["bounce_type"] == "soft"
    assert data["status"] == "4.4.2"
    assert data["smtp_response"] is None
    assert data["bounce_reason"] == "retries exhausted after 6 attempts; last error: timed out"
    assert data["metadata"] == {"diagnostic_code": "X-Postyard; timed out"}


@pytest.mark.parametrize(
    ("status", "description"),
    [
        ("5.1.10", "example.com publishes a null MX (RFC 7505): it accepts no mail"),
        ("5.4.4", "example.com does not exist (NXDOMAIN)"),
        ("5.1.2", "example.com has no MX records and no A/AAAA address to deliver to"),
    ],
)
def test_null_mx_and_nxdomain_bounce_hard(status: str, description: str) -> None:
    outcome = fail(description, permanent=True, status=status, route=None)
    assert outcome.status is MessageStatus.BOUNCED
    assert outcome.attempts == 1
    assert outcome.last_reply == description
    assert outcome.suppression == SuppressionEntry("bounces", description, status)
    data = outcome.event_data
    assert data["bounce_type"] == "hard"
    assert data["bounce_reason"] == description
    assert data["status"] == status
    assert data["smtp_response"] is None
    assert data["metadata"] == {"diagnostic_code": f"X-Postyard; {description}"}
    assert outcome.error_message == (
        f"{description} ({status}); the address was added to the bounce list; check it, and "
        "delete it from /v3/suppression/bounces to send to it again"
    )


def test_soft_bounces_go_on_the_bounce_list_as_seed_003_says() -> None:
    outcome = fail("the message is 30 MB, the server takes 10 MB", permanent=True, status="5.3.4")
    assert outcome.event_data["bounce_type"] == "soft"
    assert outcome.suppression == SuppressionEntry(
        "bounces", "the message is 30 MB, the server takes 10 MB", "5.3.4"
    )


@pytest.mark.parametrize(
    ("permanent", "status", "fragment"),
    [
        (True, "4.4.1", "permanent failure needs a 5.x.x status"),
        (False, "5.1.10", "transient failure needs a 4.x.x status"),
        (False, "timeout", "enhanced status code"),
    ],
)
def test_failed_checks_its_status(permanent: bool, status: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        fail("x", permanent=permanent, status=status)


# --- helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.build(550, "5.1.1", "x"), "5.1.1"),
        (Reply.build(550, None, "x"), "5.0.0"),
        (Reply.build(421, None, "x"), "4.0.0"),
        (Reply.build(250, None, "x"), "2.0.0"),
    ],
)
def test_status_of(reply: Reply, expected: str) -> None:
    assert status_of(reply) == expected


def test_attempt_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError, match="attempts_before"):
        attempt(before=-1)
