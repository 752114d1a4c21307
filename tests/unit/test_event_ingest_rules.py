"""Parsing an MTA agent's reports and the replies in them (``domain.event_ingest``)."""

from __future__ import annotations

import pytest

from appliance.domain.event_ingest import (
    MAX_ITEMS,
    ItemResult,
    ItemStatus,
    MessageFacts,
    Report,
    parse_items,
    parse_reply,
    plan,
)
from appliance.domain.message_status import MessageStatus


@pytest.mark.parametrize(
    ("text", "code", "status"),
    [
        ("550 5.1.1 User unknown", 550, "5.1.1"),
        (
            "host mx.example.org[192.0.2.1] said: 550 5.1.1 <a@example.org>: Recipient address "
            "rejected (in reply to RCPT TO command)",
            550,
            "5.1.1",
        ),
        ("452 4.2.2 Mailbox full", 452, "4.2.2"),
        ("250 2.0.0 Ok: queued as ABC", 250, "2.0.0"),
        ("550 no enhanced code", 550, None),
    ],
)
def test_replies_are_found_in_agent_text(text: str, code: int, status: str | None) -> None:
    reply = parse_reply(text)
    assert reply is not None and reply.code == code
    assert (str(reply.enhanced) if reply.enhanced else None) == status


@pytest.mark.parametrize("text", [None, "", "connection timed out", "status=bounced"])
def test_text_without_a_reply_gives_none(text: str | None) -> None:
    assert parse_reply(text) is None


@pytest.mark.parametrize("body", [{}, [], "x", [{}] * (MAX_ITEMS + 1)])
def test_a_body_that_is_not_a_list_of_reports_is_refused_whole(body: object) -> None:
    with pytest.raises(ValueError):
        parse_items(body)


def test_each_bad_item_says_which_field_to_fix() -> None:
    items = parse_items(
        [
            {"event": "delivered"},
            {"message_id": "msg_1", "event": "delivered", "timestamp": "yesterday"},
            {"message_id": "msg_1", "event": "bounce", "mta": 5},
            {"message_id": " msg_1 ", "event": "bounce", "bounce_type": "hard"},
        ]
    )
    errors = [i.field for i in items if isinstance(i, ItemResult)]
    assert errors == ["message_id", "timestamp", "mta"]
    last = items[-1]
    assert isinstance(last, Report) and last.message_id == "msg_1"


MESSAGE = MessageFacts("msg_1", "tnt_1", "a@example.org", "req_1", MessageStatus.DELIVERED)


def _report(**kw: object) -> Report:
    values: dict[str, object] = {
        "index": 0,
        "message_id": "msg_1",
        "event": "bounce",
        "timestamp": None,
        "smtp_response": None,
        "bounce_type": None,
        "mta": "mta1",
    }
    values.update(kw)
    return Report(**values)  # type: ignore[arg-type]


def test_a_5xx_bounce_is_classified_like_our_own_delivery() -> None:
    effect = plan(_report(smtp_response="550 5.7.1 blocked by policy"), MESSAGE, [], now=10.0)
    assert effect.result is ItemStatus.STORED
    assert effect.event_data["bounce_type"] == "block"
    assert effect.suppression is not None and effect.suppression.list_name == "blocks"


def test_a_hard_bounce_without_a_reply_is_hard_and_without_a_type_is_soft() -> None:
    hard = plan(_report(bounce_type="hard"), MESSAGE, [], now=10.0)
    soft = plan(_report(), MESSAGE, [], now=10.0)
    assert hard.event_data["bounce_type"] == "hard"
    assert soft.event_data["bounce_type"] == "soft"


def test_any_earlier_bounce_makes_a_duplicate_and_deferred_is_not_stored() -> None:
    dup = plan(
        _report(smtp_response="550 5.1.1 x"), MESSAGE, [("bounce", {"status": "5.2.2"})], now=1
    )
    assert dup.result is ItemStatus.DUPLICATE and dup.event_type is None
    deferred = plan(_report(event="deferred"), MESSAGE, [], now=1)
    assert deferred.result is ItemStatus.NOT_STORED


def test_a_timestamp_in_the_future_is_taken_as_now() -> None:
    effect = plan(_report(event="delivered", timestamp=99.0), MESSAGE, [], now=50.0)
    assert effect.occurred_at == 50.0
