"""Submission: when AUTH is offered, and the SMTP wording of every refused send."""

from __future__ import annotations

import pytest

from appliance.config import Listen, load_config
from appliance.domain.send_errors import FieldError, SendValidationError
from appliance.protocols.smtp_server import AuthMode
from appliance.services.acceptance import (
    AcceptanceError,
    InvalidReferences,
    QueueFull,
    ReferenceProblem,
    SenderDomainNotVerified,
    SendingLimitExceeded,
    StoreUnavailable,
    TenantSuspended,
)
from appliance.services.submission import auth_mode
from appliance.services.submission_policy import acceptance_reply, refused_message, reply
from appliance.store.database import StoreError


@pytest.mark.parametrize(
    ("host", "tls", "allow_plain", "expected"),
    [
        ("0.0.0.0", True, False, AuthMode.AFTER_TLS),
        ("127.0.0.1", True, False, AuthMode.AFTER_TLS),
        ("0.0.0.0", False, False, None),  # API keys would cross the network in clear text
        ("127.0.0.1", False, False, AuthMode.ALWAYS),
        ("::1", False, False, AuthMode.ALWAYS),
        ("localhost", False, False, AuthMode.ALWAYS),
        ("192.0.2.1", False, True, AuthMode.ALWAYS),
        ("192.0.2.1", True, True, AuthMode.ALWAYS),
    ],
)
def test_auth_is_offered_under_tls_or_where_clear_text_is_allowed(
    host: str, tls: bool, allow_plain: bool, expected: AuthMode | None
) -> None:
    config = load_config(environ={}, overrides={"submission_allow_plain_auth": allow_plain})
    assert auth_mode(config, Listen(host, 587), tls=tls) is expected


@pytest.mark.parametrize(
    ("error", "code", "enhanced", "says"),
    [
        (TenantSuspended("bounce rate"), 521, "5.7.1", "Sending is suspended"),
        (SenderDomainNotVerified("x.example"), 550, "5.1.0", "x.example is not a verified"),
        (SendingLimitExceeded("warm-up cap of 50 reached today"), 451, "4.7.1", "warm-up cap"),
        (QueueFull(10, 10), 451, "4.4.2", "Queue full"),
        (StoreUnavailable(StoreError("database is locked")), 451, "4.4.2", "database is locked"),
        (
            InvalidReferences([ReferenceProblem("The batch id is not valid", "batch_id")]),
            550,
            "5.6.0",
            "batch_id: The batch id is not valid",
        ),
    ],
)
def test_each_refusal_has_its_smtp_reply(
    error: AcceptanceError, code: int, enhanced: str, says: str
) -> None:
    answer = acceptance_reply(error)
    assert (answer.code, str(answer.enhanced)) == (code, enhanced)
    assert says in answer.text


def test_validation_errors_are_550_5_6_0_with_their_fields() -> None:
    exc = SendValidationError([FieldError("The subject is required.", "subject", None)])
    answer = refused_message(exc)
    assert str(answer) == "550 5.6.0 Message refused: The subject is required. (subject)"


def test_long_or_multiline_text_is_folded_into_safe_reply_lines() -> None:
    answer = reply(550, "5.6.0", "x\r\ny " + "word " * 1000)
    assert all("\r" not in line and "\n" not in line for line in answer.lines)
    assert all(len(line) <= 510 for line in answer.to_bytes().split(b"\r\n"))
    assert answer.lines[0].startswith("x y word")
    assert answer.lines[-1].endswith("…")
