"""Which refusals ask us to slow down for the whole destination, row by row."""

from __future__ import annotations

import pytest

from appliance.domain.bounce_classification import is_greylisting
from appliance.domain.delivery_outcome import is_throttling as reexported
from appliance.domain.throttling import THROTTLE_RULES, is_throttling, throttle_rule
from appliance.protocols.smtp_reply import Reply


def reply(code: int, status: str | None, text: str) -> Reply:
    return Reply.build(code, status, text)


THROTTLING = [
    (421, None, "Service not available, closing transmission channel"),
    (421, "4.7.0", "Too many concurrent SMTP connections from this IP address"),
    (421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail"),
    (421, "4.3.2", "System not accepting network messages"),
    (450, "4.7.28", "Gmail has detected an unusual rate; the IP is rate limited"),
    (452, "4.7.28", "Rate limited"),
    (454, "4.7.28", "Sending address temporarily limited"),
    (451, "4.7.500", "Server busy, access temporarily limited for [192.0.2.1]"),
    (450, "4.7.1", "Too many messages from your IP, slow down"),
    (451, None, "Rate limit exceeded for sender, try later"),
    (452, None, "Too many connections, please reduce your sending rate"),
    (450, "4.3.0", "Throttling failure: maximum sending rate exceeded"),
    (454, "4.7.0", "Connection rate limit exceeded"),
    (452, "4.7.0", "Temporary policy deferral, try again later"),
]

NOT_THROTTLING = [
    # Greylisting is answered by the message's short first retry, not a hold.
    (451, "4.7.1", "Greylisted, please try again in 60 seconds"),
    (450, "4.2.0", "Recipient address rejected: Greylisted"),
    (451, "4.7.1", "Please try again later"),
    (421, "4.7.0", "Greylisting in action, come back later"),
    # One mailbox, one transaction, or nothing about rates at all.
    (450, "4.2.1", "The user is receiving mail at a rate that prevents additional messages"),
    (452, "4.2.2", "Mailbox full"),
    (452, "4.5.3", "Too many recipients"),
    (452, None, "Too many recipients received this hour"),
    (451, "4.3.0", "Temporary local problem, please try later"),
    (450, "4.1.1", "User unknown in virtual alias table"),
    (451, "4.4.6", "Too many hops"),
    (454, "4.7.1", "Relay access denied"),
    (454, "4.7.0", "TLS not available due to local problem"),
    # Permanent refusals bounce; they never hold the destination.
    (550, "5.7.1", "Rate limit exceeded, message refused"),
    (554, None, "Too many connections"),
    (250, None, "OK"),
]


@pytest.mark.parametrize(("code", "status", "text"), THROTTLING)
def test_slow_down_replies_are_throttling(code: int, status: str | None, text: str) -> None:
    assert is_throttling(reply(code, status, text))


@pytest.mark.parametrize(("code", "status", "text"), NOT_THROTTLING)
def test_other_replies_are_not(code: int, status: str | None, text: str) -> None:
    assert not is_throttling(reply(code, status, text))


def test_451_greylisting_versus_421_throttling() -> None:
    greylist = reply(451, "4.7.1", "Greylisted, try again later")
    closing = reply(421, "4.7.0", "Too many connections, try again later")
    assert is_greylisting(greylist) and not is_throttling(greylist)
    assert not is_greylisting(closing) and is_throttling(closing)


@pytest.mark.parametrize(("code", "status", "text"), THROTTLING + NOT_THROTTLING)
def test_never_both_greylisting_and_throttling(code: int, status: str | None, text: str) -> None:
    r = reply(code, status, text)
    assert not (is_greylisting(r) and is_throttling(r))


def test_the_deciding_rule_explains_itself() -> None:
    rule = throttle_rule(reply(450, "4.2.1", "receiving mail at a rate"))
    assert rule is not None and not rule.throttling and "one mailbox" in rule.why
    assert throttle_rule(reply(450, "4.3.0", "Mailbox busy")) is None
    assert all(r.why for r in THROTTLE_RULES)


def test_delivery_outcome_reexports_the_same_function() -> None:
    assert reexported is is_throttling
