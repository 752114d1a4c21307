"""The sans-io SMTP server core: framing, state table, commands, limits,
AUTH, STARTTLS (and its injection), and SMTP smuggling."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.protocols import smtp_server_replies as R
from appliance.protocols.smtp_commands import (
    Command,
    parse_mail_from,
    parse_parameters,
    parse_rcpt_to,
)
from appliance.protocols.smtp_reply import Reply
from appliance.protocols.smtp_server import (
    NEED_DATA,
    AuthAttempt,
    AuthMode,
    CloseReason,
    Connected,
    ConnectionClosed,
    Helo,
    LocalProtocolError,
    MailFrom,
    MessageData,
    MessageRefused,
    RcptTo,
    RemoteProtocolError,
    SmtpLimits,
    SmtpServerConnection,
    SmtpState,
    StartTlsRequested,
)
from appliance.protocols.smtp_server_events import DecisionEvent
from appliance.protocols.smtp_server_states import COMMAND_STATES, TRANSITIONS, Step
from tests.support.smtp_server_driver import Decide, Transcript, drive, new_core, parse_replies

EHLO = b"EHLO client.test\r\n"
MAIL = b"MAIL FROM:<sender@example.com>\r\n"
RCPT = b"RCPT TO:<rcpt@example.net>\r\n"
TRANSACTION = EHLO + MAIL + RCPT + b"DATA\r\n"
CHUNK_SIZES = [None, 1, 2, 3, 7]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def plain(username: str, password: str, authzid: str = "") -> str:
    """An RFC 4616 PLAIN response, base64-encoded."""
    return b64(f"{authzid}\0{username}\0{password}")


def ready_core(**options: object) -> SmtpServerConnection:
    core = new_core(**options)
    drive(core, EHLO)
    assert core.state is SmtpState.READY
    return core


# --- feeding bytes whole, one at a time, with trailing data ------------------


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_whole_transaction_same_result_for_any_chunking(chunk_size: int | None) -> None:
    data = TRANSACTION + b"Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n"
    t = drive(new_core(), data, chunk_size=chunk_size)
    assert t.codes == [220, 250, 250, 250, 354, 250, 221]
    assert t.replies[-2] == R.MESSAGE_ACCEPTED
    assert t.replies[-1] == R.BYE
    [message] = t.messages
    assert message.data == b"Subject: hi\r\n\r\n.dot\r\nbody\r\n"
    assert message.envelope.mail_from == "sender@example.com"
    assert message.envelope.recipients == ("rcpt@example.net",)
    assert t.closed == ConnectionClosed(CloseReason.QUIT, R.BYE)


def test_greeting_is_a_decision_then_220() -> None:
    core = new_core()
    assert core.next_event() == Connected()
    out = core.accept()
    assert out == b"220 mx.test ESMTP Postyard\r\n"
    assert core.state is SmtpState.AWAIT_HELO
    assert core.next_event() is NEED_DATA


def test_partial_command_waits_for_the_rest() -> None:
    core = ready_core()
    t = drive(core, b"NOOP\r\nNO")
    assert t.replies == [R.OK]
    assert core.next_event() is NEED_DATA
    t = drive(core, b"OP\r\n")
    assert t.replies == [R.OK]


def test_bytes_after_quit_are_ignored() -> None:
    core = ready_core()
    t = drive(core, b"QUIT\r\nNOOP\r\nMAIL FROM:<a@b.c>\r\n")
    assert t.replies == [R.BYE]
    assert core.state is SmtpState.CLOSED
    core.receive_data(b"NOOP\r\n")  # ignored once closed
    assert core.next_event() == ConnectionClosed(CloseReason.QUIT, R.BYE)
    assert core.data_to_send() == b""


def test_trailing_data_after_end_of_data_is_read_as_commands() -> None:
    core = ready_core()
    t = drive(core, MAIL + RCPT + b"DATA\r\nx\r\n.\r\nNOOP\r\n")
    assert t.codes == [250, 250, 354, 250, 250]
    assert core.state is SmtpState.READY


# --- pipelining: in order, one at a time ---------------------------------------


def test_pipelined_commands_replied_in_order_with_policy_decisions() -> None:
    def decide(event: DecisionEvent) -> Reply | None:
        if isinstance(event, RcptTo) and event.address.startswith("no@"):
            return Reply.build(550, "5.7.1", "Recipient suppressed")
        return None

    data = (
        EHLO
        + MAIL
        + b"RCPT TO:<a@example.net>\r\nRCPT TO:<no@example.net>\r\nRCPT TO:<b@example.net>\r\n"
        + b"NOOP\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n"
    )
    for chunk_size in CHUNK_SIZES:
        t = drive(new_core(), data, decide=decide, chunk_size=chunk_size)
        assert t.codes == [220, 250, 250, 250, 550, 250, 250, 354, 250, 221]
        assert t.messages[0].envelope.recipients == ("a@example.net", "b@example.net")


def test_no_command_is_read_while_a_decision_is_owed() -> None:
    core = ready_core()
    core.receive_data(MAIL + RCPT)
    event = core.next_event()
    assert isinstance(event, MailFrom)
    with pytest.raises(LocalProtocolError, match="pending MailFrom"):
        core.next_event()
    assert core.accept() == R.SENDER_OK.to_bytes()
    assert isinstance(core.next_event(), RcptTo)


def test_accept_without_a_pending_decision_is_our_bug() -> None:
    core = ready_core()
    with pytest.raises(LocalProtocolError, match="no decision is pending"):
        core.accept()


def test_accept_needs_positive_reject_needs_negative_reply() -> None:
    core = ready_core()
    core.receive_data(MAIL)
    core.next_event()
    with pytest.raises(LocalProtocolError):
        core.accept(R.AUTH_FAILED)
    with pytest.raises(LocalProtocolError):
        core.reject(R.OK)
    assert core.reject(Reply.build(550, "5.1.0", "Sender domain not allowed")).startswith(b"550")
    assert core.state is SmtpState.READY


def test_accept_with_custom_positive_reply() -> None:
    def decide(event: DecisionEvent) -> Reply | None:
        if isinstance(event, MessageData):
            return Reply.build(250, "2.0.0", "Queued as 42")
        return None

    t = drive(new_core(), TRANSACTION + b"x\r\n.\r\n", decide=decide)
    assert t.replies[-1] == Reply.build(250, "2.0.0", "Queued as 42")


# --- the state table -------------------------------------------------------------


def test_state_table_has_a_row_for_every_state() -> None:
    assert set(TRANSITIONS) == set(SmtpState)


def test_closed_is_terminal_and_every_other_state_can_close() -> None:
    assert TRANSITIONS[SmtpState.CLOSED] == {}
    for state in SmtpState:
        if state is not SmtpState.CLOSED:
            assert TRANSITIONS[state][Step.CLOSE] is SmtpState.CLOSED


def test_quit_is_allowed_in_every_command_state() -> None:
    for state in COMMAND_STATES:
        assert TRANSITIONS[state][Command.QUIT] is SmtpState.CLOSED


def test_data_is_only_reachable_from_rcpt() -> None:
    sources = {s for s, row in TRANSITIONS.items() if SmtpState.DATA in row.values()}
    assert sources == {SmtpState.RCPT}
    assert TRANSITIONS[SmtpState.RCPT][Command.DATA] is SmtpState.DATA


def test_mail_needs_helo_and_no_transaction() -> None:
    assert Command.MAIL not in TRANSITIONS[SmtpState.AWAIT_HELO]
    assert Command.MAIL not in TRANSITIONS[SmtpState.MAIL]
    assert TRANSITIONS[SmtpState.READY][Command.MAIL] is SmtpState.MAIL


def test_starttls_and_auth_only_outside_a_transaction() -> None:
    for state, row in TRANSITIONS.items():
        if Command.STARTTLS in row or Command.AUTH in row:
            assert state is SmtpState.READY
    assert TRANSITIONS[SmtpState.STARTTLS] == {
        Step.TLS_ESTABLISHED: SmtpState.AWAIT_HELO,
        Step.CLOSE: SmtpState.CLOSED,
    }


def test_core_walks_the_table_through_a_transaction() -> None:
    core = new_core()
    seen = [core.state]
    for data in (b"", EHLO, MAIL, RCPT, b"DATA\r\n", b"x\r\n.\r\n", b"QUIT\r\n"):
        drive(core, data)
        seen.append(core.state)
    assert seen == [
        SmtpState.GREETING,
        SmtpState.AWAIT_HELO,
        SmtpState.READY,
        SmtpState.MAIL,
        SmtpState.RCPT,
        SmtpState.DATA,
        SmtpState.READY,
        SmtpState.CLOSED,
    ]


# --- EHLO / HELO and simple commands --------------------------------------------


def test_ehlo_advertises_extensions() -> None:
    t = drive(new_core(limits=SmtpLimits(max_message_size=12345)), EHLO)
    ehlo = t.replies[-1]
    assert ehlo.code == 250
    assert ehlo.lines == (
        "mx.test",
        "SIZE 12345",
        "8BITMIME",
        "SMTPUTF8",
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
    )


def test_ehlo_offers_starttls_and_auth_only_when_allowed() -> None:
    def keywords(core: SmtpServerConnection, data: bytes = EHLO) -> tuple[str, ...]:
        return drive(core, data).replies[-1].lines[1:]

    core = new_core(tls_available=True, auth_mode=AuthMode.AFTER_TLS)
    assert "STARTTLS" in keywords(core)
    assert "AUTH PLAIN LOGIN" not in keywords(core)
    drive(core, b"STARTTLS\r\n")
    after_tls = keywords(core)
    assert "STARTTLS" not in after_tls
    assert "AUTH PLAIN LOGIN" in after_tls

    assert "AUTH PLAIN LOGIN" in keywords(new_core(auth_mode=AuthMode.ALWAYS))
    assert not any(k.startswith("AUTH") for k in keywords(new_core()))
    assert "STARTTLS" not in keywords(new_core())


def test_helo_gets_a_plain_250() -> None:
    t = drive(new_core(), b"HELO old.client\r\n")
    assert t.replies[-1] == Reply(250, ("mx.test",))
    assert t.of_type(Helo) == [Helo("old.client", extended=False)]


def test_refused_helo_keeps_waiting_for_helo() -> None:
    def decide(event: DecisionEvent) -> Reply | None:
        return Reply.build(550, "5.7.1", "Go away") if isinstance(event, Helo) else None

    t = drive(new_core(), EHLO + MAIL, decide=decide)
    assert t.codes == [220, 550, 503]
    assert t.replies[-1] == R.HELO_FIRST


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"NOOP\r\n", R.OK),
        (b"NOOP anything\r\n", R.OK),
        (b"noop\r\n", R.OK),
        (b"VRFY someone\r\n", R.CANNOT_VRFY),
        (b"VRFY\r\n", R.VRFY_SYNTAX),
        (b"HELP\r\n", R.HELP),
        (b"RSET\r\n", R.OK),
        (b"RSET now\r\n", R.NO_ARGUMENTS_ALLOWED),
        (b"FOO bar\r\n", R.UNKNOWN_COMMAND),
        (b"M@IL\r\n", R.UNKNOWN_COMMAND),
        (b"EXPN list\r\n", R.NOT_IMPLEMENTED),
        (b"BDAT 10 LAST\r\n", R.NOT_IMPLEMENTED),
        (b"\r\n", R.EMPTY_COMMAND),
        (b"EHLO\r\n", R.HELO_SYNTAX),
        (b"RCPT TO:<a@b.c>\r\n", R.MAIL_FIRST),
        (b"DATA\r\n", R.RCPT_FIRST),
        (b"STARTTLS\r\n", R.STARTTLS_UNAVAILABLE),
        (b"AUTH PLAIN\r\n", R.AUTH_UNAVAILABLE),
        (b"NOOP \xff\r\n", R.INVALID_COMMAND_BYTES),
    ],
)
def test_simple_command_replies(line: bytes, reply: Reply) -> None:
    t = drive(ready_core(), line)
    assert t.replies == [reply]


def test_mail_before_helo_is_bad_sequence() -> None:
    t = drive(new_core(), MAIL)
    assert t.replies[-1] == R.HELO_FIRST
    assert str(t.replies[-1]).startswith("503 5.5.1")


def test_second_mail_and_data_without_recipients() -> None:
    def decide(event: DecisionEvent) -> Reply | None:
        return Reply.build(550, "5.1.1", "No such user") if isinstance(event, RcptTo) else None

    t = drive(ready_core(), MAIL + MAIL + RCPT + b"DATA\r\n", decide=decide)
    assert t.replies == [
        R.SENDER_OK,
        R.SENDER_ALREADY_GIVEN,
        Reply.build(550, "5.1.1", "No such user"),
        R.NO_VALID_RECIPIENTS,
    ]


def test_rset_ends_the_transaction_but_keeps_helo() -> None:
    core = ready_core()
    t = drive(core, MAIL + RCPT + b"RSET\r\n" + RCPT + MAIL)
    assert t.replies == [R.SENDER_OK, R.RECIPIENT_OK, R.OK, R.MAIL_FIRST, R.SENDER_OK]
    assert core.helo_name == "client.test"


# --- MAIL / RCPT arguments ----------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "address"),
    [
        ("FROM:<a@b.example>", "a@b.example"),
        ("from:<a@b.example>", "a@b.example"),
        ("FROM: <a@b.example>", "a@b.example"),
        ("FROM:<>", ""),
        ("FROM:<@relay.example,@other.example:a@b.example>", "a@b.example"),
        ('FROM:<"odd>local"@b.example>', '"odd>local"@b.example'),
        ("FROM:<bounces+42@[192.0.2.1]>", "bounces+42@[192.0.2.1]"),
        ("FROM:<x@[IPv6:2001:db8::1]>", "x@[IPv6:2001:db8::1]"),
    ],
)
def test_mail_from_paths(argument: str, address: str) -> None:
    assert parse_mail_from(argument).address == address


@pytest.mark.parametrize(
    ("argument", "reply"),
    [
        ("FROM:a@b.example", R.MAIL_SYNTAX),
        ("FROM <a@b.example>", R.MAIL_SYNTAX),
        ("FROM:<a@b.example", R.MAIL_SYNTAX),
        ("FROM:<a@b.example>SIZE=1", R.MAIL_SYNTAX),
        ("FROM:<a@@b.example>", R.BAD_SENDER_ADDRESS),
        ("FROM:<a@b..example>", R.BAD_SENDER_ADDRESS),
        ("FROM:<a b@example>", R.BAD_SENDER_ADDRESS),
        ("FROM:<nodomain>", R.BAD_SENDER_ADDRESS),
        ("FROM:<a@-bad.example>", R.BAD_SENDER_ADDRESS),
        (f"FROM:<{'x' * 65}@b.example>", R.BAD_SENDER_ADDRESS),
        ("FROM:<a@b.example> SIZE=1 SIZE=2", R.PARAMETER_SYNTAX),
        ("FROM:<a@b.example> =1", R.PARAMETER_SYNTAX),
    ],
)
def test_mail_from_syntax_errors(argument: str, reply: Reply) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_mail_from(argument)
    assert info.value.reply == reply


@pytest.mark.parametrize(
    ("argument", "reply"),
    [
        ("TO:<>", R.BAD_RECIPIENT_ADDRESS),
        ("TO:<user>", R.BAD_RECIPIENT_ADDRESS),
        ("TO:<a@b@c>", R.BAD_RECIPIENT_ADDRESS),
        ("TO:user@example.net", R.RCPT_SYNTAX),
        ("FROM:<user@example.net>", R.RCPT_SYNTAX),
    ],
)
def test_rcpt_to_syntax_errors(argument: str, reply: Reply) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_rcpt_to(argument)
    assert info.value.reply == reply
    assert str(info.value.reply).startswith(("501 5.1.3", "501 5.5.4"))


def test_rcpt_to_bare_postmaster_is_accepted() -> None:
    assert parse_rcpt_to("TO:<Postmaster>").address == "postmaster"


def test_parameters_are_upper_cased_with_optional_values() -> None:
    assert parse_parameters(" size=10  BODY=8BITMIME SMTPUTF8") == {
        "SIZE": "10",
        "BODY": "8BITMIME",
        "SMTPUTF8": None,
    }


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME\r\n", R.SENDER_OK),
        (b"MAIL FROM:<a@b.example> BODY=7bit AUTH=<>\r\n", R.SENDER_OK),
        (b"MAIL FROM:<a@b.example> SIZE=1001\r\n", R.MESSAGE_TOO_BIG),
        (b"MAIL FROM:<a@b.example> SIZE=1000\r\n", R.SENDER_OK),
        (b"MAIL FROM:<a@b.example> SIZE=big\r\n", R.PARAMETER_SYNTAX),
        (b"MAIL FROM:<a@b.example> SIZE\r\n", R.PARAMETER_SYNTAX),
        (b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n", R.PARAMETER_UNSUPPORTED),
        (b"MAIL FROM:<a@b.example> RET=HDRS\r\n", R.PARAMETER_UNSUPPORTED),
        (b"MAIL FROM:<a@b.example> SMTPUTF8=yes\r\n", R.PARAMETER_SYNTAX),
        ("MAIL FROM:<jöran@b.example>\r\n".encode(), R.NON_ASCII_ADDRESS),
        ("MAIL FROM:<jöran@bü.example> SMTPUTF8\r\n".encode(), R.SENDER_OK),
    ],
)
def test_mail_parameters(line: bytes, reply: Reply) -> None:
    core = ready_core(limits=SmtpLimits(max_message_size=1000))
    assert drive(core, line).replies == [reply]


def test_size_over_limit_is_552_5_3_4() -> None:
    core = ready_core(limits=SmtpLimits(max_message_size=1000))
    [reply] = drive(core, b"MAIL FROM:<a@b.example> SIZE=5000\r\n").replies
    assert str(reply).startswith("552 5.3.4")


def test_rcpt_parameters_are_refused_and_utf8_needs_smtputf8() -> None:
    core = ready_core()
    t = drive(
        core,
        MAIL
        + b"RCPT TO:<a@b.example> NOTIFY=NEVER\r\n"
        + "RCPT TO:<ü@b.example>\r\n".encode()
        + RCPT,
    )
    assert t.replies == [R.SENDER_OK, R.PARAMETER_UNSUPPORTED, R.NON_ASCII_ADDRESS, R.RECIPIENT_OK]
    t = drive(
        core, b"RSET\r\nMAIL FROM:<a@b.example> SMTPUTF8\r\n" + "RCPT TO:<ü@b.example>\r\n".encode()
    )
    assert t.replies == [R.OK, R.SENDER_OK, R.RECIPIENT_OK]
    assert t.of_type(RcptTo) == [RcptTo("ü@b.example", {})]


# --- limits --------------------------------------------------------------------------


def test_command_line_of_512_octets_is_accepted() -> None:
    line = b"NOOP " + b"x" * (512 - 7) + b"\r\n"
    assert len(line) == 512
    assert drive(ready_core(), line).replies == [R.OK]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_command_line_over_512_octets_is_500_5_5_2(chunk_size: int | None) -> None:
    line = b"NOOP " + b"x" * (513 - 7) + b"\r\n"
    long_without_lf = b"NOOP " + b"y" * 5000 + b"\r\n"
    t = drive(ready_core(), line + long_without_lf + b"NOOP\r\n", chunk_size=chunk_size)
    assert t.replies == [R.LINE_TOO_LONG, R.LINE_TOO_LONG, R.OK]
    assert str(R.LINE_TOO_LONG) == "500 5.5.2 Line too long"


def test_message_over_size_limit_is_refused_and_session_continues() -> None:
    core = ready_core(limits=SmtpLimits(max_message_size=100))
    body = b"x" * 60 + b"\r\n" + b"y" * 60 + b"\r\n"
    t = drive(core, MAIL + RCPT + b"DATA\r\n" + body + b".\r\n" + MAIL)
    assert t.replies == [
        R.SENDER_OK,
        R.RECIPIENT_OK,
        R.START_MAIL_INPUT,
        R.MESSAGE_TOO_BIG,
        R.SENDER_OK,
    ]
    [refused] = t.of_type(MessageRefused)
    assert refused.size == len(body)
    assert t.messages == []


def test_message_exactly_at_size_limit_is_accepted() -> None:
    body = b"z" * 98 + b"\r\n"
    core = ready_core(limits=SmtpLimits(max_message_size=len(body)))
    t = drive(core, MAIL + RCPT + b"DATA\r\n" + body + b".\r\n")
    assert t.messages[0].data == body


def test_lines_longer_than_1000_octets_in_data_are_accepted() -> None:
    body = b"a" * 5000 + b"\r\n"
    t = drive(ready_core(), MAIL + RCPT + b"DATA\r\n" + body + b".\r\n", chunk_size=333)
    assert t.messages[0].data == body


def test_too_many_recipients_is_452_4_5_3() -> None:
    core = ready_core(limits=SmtpLimits(max_recipients=2))
    t = drive(core, MAIL + RCPT * 3)
    assert t.replies == [R.SENDER_OK, R.RECIPIENT_OK, R.RECIPIENT_OK, R.TOO_MANY_RECIPIENTS]
    assert str(R.TOO_MANY_RECIPIENTS).startswith("452 4.5.3")


def test_too_many_errors_closes_with_421_4_7_0() -> None:
    core = ready_core(limits=SmtpLimits(max_errors=3))
    t = drive(core, b"FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n")
    assert t.replies == [R.UNKNOWN_COMMAND, R.UNKNOWN_COMMAND, R.TOO_MANY_ERRORS]
    assert t.closed == ConnectionClosed(CloseReason.TOO_MANY_ERRORS, R.TOO_MANY_ERRORS)
    assert str(R.TOO_MANY_ERRORS).startswith("421 4.7.0")


def test_too_many_commands_without_a_transaction_closes() -> None:
    core = ready_core(limits=SmtpLimits(max_commands_without_transaction=4))
    t = drive(core, b"NOOP\r\n" * 3 + b"RSET\r\n" + b"NOOP\r\n")
    # EHLO was the first counted command.
    assert t.replies == [R.OK, R.OK, R.OK, R.TOO_MANY_COMMANDS]
    assert t.closed is not None and t.closed.reason is CloseReason.TOO_MANY_COMMANDS


def test_completed_message_resets_the_command_count() -> None:
    core = ready_core(limits=SmtpLimits(max_commands_without_transaction=4))
    drive(core, b"NOOP\r\n" * 2 + MAIL + RCPT + b"DATA\r\nx\r\n.\r\n")
    t = drive(core, b"NOOP\r\n" * 4)
    assert t.replies == [R.OK] * 4


def test_idle_timeout_reply_comes_from_close() -> None:
    core = ready_core()
    assert core.close(R.IDLE_TIMEOUT) == b"421 4.4.2 Idle timeout, closing connection\r\n"
    assert core.next_event() == ConnectionClosed(CloseReason.LOCAL, R.IDLE_TIMEOUT)


def test_limits_refuse_a_command_line_below_the_rfc_minimum() -> None:
    with pytest.raises(ValueError, match="512"):
        SmtpLimits(max_command_line=100)


# --- AUTH ---------------------------------------------------------------------------


def auth_decide(event: DecisionEvent) -> Reply | None:
    if isinstance(event, AuthAttempt) and event.password != "secret":
        return R.AUTH_FAILED
    return None


def auth_core(**options: object) -> SmtpServerConnection:
    options.setdefault("auth_mode", AuthMode.ALWAYS)
    return ready_core(**options)


def test_auth_plain_with_initial_response() -> None:
    core = auth_core(require_auth=True)
    t = drive(
        core, f"AUTH PLAIN {plain('apikey', 'secret')}\r\n".encode() + MAIL, decide=auth_decide
    )
    assert t.replies == [R.AUTH_SUCCEEDED, R.SENDER_OK]
    assert t.of_type(AuthAttempt) == [AuthAttempt("PLAIN", "apikey", "secret")]
    assert core.authenticated_user == "apikey"


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_auth_plain_with_continuation(chunk_size: int | None) -> None:
    core = auth_core()
    data = b"AUTH PLAIN\r\n" + f"{plain('apikey', 'secret', 'admin')}\r\n".encode()
    t = drive(core, data, decide=auth_decide, chunk_size=chunk_size)
    assert t.replies == [R.AUTH_CONTINUE, R.AUTH_SUCCEEDED]
    assert t.output.startswith(b"334 \r\n")  # empty challenge, RFC 4954 §4
    assert t.of_type(AuthAttempt) == [AuthAttempt("PLAIN", "apikey", "secret", "admin")]


def test_auth_login_both_ways() -> None:
    data = f"AUTH LOGIN\r\n{b64('apikey')}\r\n{b64('secret')}\r\n".encode()
    t = drive(auth_core(), data, decide=auth_decide)
    assert t.replies == [R.AUTH_LOGIN_USERNAME, R.AUTH_LOGIN_PASSWORD, R.AUTH_SUCCEEDED]
    data = f"AUTH LOGIN {b64('apikey')}\r\n{b64('secret')}\r\n".encode()
    t = drive(auth_core(), data, decide=auth_decide)
    assert t.replies == [R.AUTH_LOGIN_PASSWORD, R.AUTH_SUCCEEDED]
    assert t.of_type(AuthAttempt) == [AuthAttempt("LOGIN", "apikey", "secret")]


def test_auth_failure_is_535_5_7_8_and_spends_the_error_budget() -> None:
    core = auth_core(limits=SmtpLimits(max_errors=3))
    bad = f"AUTH PLAIN {plain('apikey', 'wrong')}\r\n".encode()
    t = drive(core, bad * 3, decide=auth_decide)
    assert t.replies == [R.AUTH_FAILED, R.AUTH_FAILED, R.TOO_MANY_ERRORS]
    assert str(R.AUTH_FAILED).startswith("535 5.7.8")
    assert core.authenticated_user is None


def test_auth_password_is_not_in_repr() -> None:
    assert "hunter2" not in repr(AuthAttempt("PLAIN", "apikey", "hunter2"))


@pytest.mark.parametrize(
    ("data", "replies"),
    [
        (b"AUTH PLAIN !!!\r\n", [R.AUTH_SYNTAX]),
        (f"AUTH PLAIN {b64('no-nuls')}\r\n".encode(), [R.AUTH_SYNTAX]),
        (b"AUTH PLAIN\r\n*\r\n", [R.AUTH_CONTINUE, R.AUTH_CANCELLED]),
        (b"AUTH PLAIN\r\n!!\r\nNOOP\r\n", [R.AUTH_CONTINUE, R.AUTH_SYNTAX, R.OK]),
        (b"AUTH CRAM-MD5\r\n", [R.AUTH_MECHANISM_UNKNOWN]),
        (b"AUTH\r\n", [R.AUTH_SYNTAX]),
        (MAIL + b"AUTH PLAIN\r\n", [R.SENDER_OK, R.AUTH_IN_TRANSACTION]),
    ],
)
def test_auth_errors(data: bytes, replies: list[Reply]) -> None:
    core = auth_core()
    assert drive(core, data, decide=auth_decide).replies == replies
    assert core.state in (SmtpState.READY, SmtpState.MAIL)


def test_auth_twice_is_bad_sequence() -> None:
    core = auth_core()
    line = f"AUTH PLAIN {plain('apikey', 'secret')}\r\n".encode()
    t = drive(core, line + line, decide=auth_decide)
    assert t.replies == [R.AUTH_SUCCEEDED, R.ALREADY_AUTHENTICATED]


def test_auth_after_tls_only_answers_530_before_tls() -> None:
    core = ready_core(tls_available=True, auth_mode=AuthMode.AFTER_TLS, require_auth=True)
    t = drive(core, b"AUTH PLAIN\r\n" + MAIL)
    assert t.replies == [R.STARTTLS_FIRST, R.AUTH_REQUIRED]
    assert str(R.AUTH_REQUIRED).startswith("530 5.7.0")


# --- STARTTLS ---------------------------------------------------------------------------


def test_starttls_resets_the_session() -> None:
    core = ready_core(tls_available=True, auth_mode=AuthMode.AFTER_TLS)
    t = drive(core, b"STARTTLS\r\n")
    assert t.replies == [R.READY_TO_START_TLS]
    assert core.tls_active and core.state is SmtpState.AWAIT_HELO and core.helo_name is None
    t = drive(core, MAIL + EHLO + b"STARTTLS\r\n")
    assert t.replies[0] == R.HELO_FIRST
    assert t.replies[2] == R.TLS_ALREADY_ACTIVE


def test_next_event_before_tls_established_is_our_bug() -> None:
    core = ready_core(tls_available=True)
    drive(core, b"STARTTLS\r\n", handshake=False)
    assert core.state is SmtpState.STARTTLS
    with pytest.raises(LocalProtocolError, match="tls_established"):
        core.next_event()


def test_starttls_in_a_transaction_or_with_arguments_is_refused() -> None:
    core = ready_core(tls_available=True)
    t = drive(core, b"STARTTLS now\r\n" + MAIL + b"STARTTLS\r\n")
    assert t.replies == [R.NO_ARGUMENTS_ALLOWED, R.SENDER_OK, R.STARTTLS_IN_TRANSACTION]


@pytest.mark.parametrize("chunk_size", [None, 1])
def test_starttls_injection_pipelined_commands_are_discarded(chunk_size: int | None) -> None:
    """CVE-2011-0411: plain-text commands sent with STARTTLS must not run after TLS."""
    core = ready_core(tls_available=True, auth_mode=AuthMode.AFTER_TLS)
    injected = b"STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@x.example>\r\n"
    t = drive(core, injected, handshake=False)
    if chunk_size is None:
        assert core.discarded_after_starttls == len(injected) - len(b"STARTTLS\r\n")
    assert t.replies == [R.READY_TO_START_TLS]
    core.receive_data(b"NOOP\r\n")  # late plain text read before the handshake finished
    core.tls_established()
    assert core.next_event() is NEED_DATA
    t = drive(core, EHLO + MAIL, chunk_size=chunk_size)
    assert [type(e) for e in t.events] == [Helo, MailFrom]
    assert t.of_type(MailFrom) == [MailFrom("sender@example.com", {})]
    assert t.codes == [250, 250]


def test_starttls_event_is_a_decision() -> None:
    core = ready_core(tls_available=True)
    core.receive_data(b"STARTTLS\r\n")
    assert core.next_event() == StartTlsRequested()
    assert core.reject(Reply.build(454, "4.7.0", "TLS not available now")).startswith(b"454")
    assert core.state is SmtpState.READY


# --- SMTP smuggling (RFC 5321 §4.1.1.4: the end of data is only <CRLF>.<CRLF>) -------

SMUGGLED = b"MAIL FROM:<admin@victim.example>\r\nRCPT TO:<x@victim.example>\r\nDATA\r\nevil\r\n"


def smuggle(separator: bytes, chunk_size: int | None) -> Transcript:
    body = b"Subject: hi\r\n\r\nhello" + separator + SMUGGLED + b".\r\n"
    return drive(
        ready_core(), MAIL + RCPT + b"DATA\r\n" + body + b"QUIT\r\n", chunk_size=chunk_size
    )


def assert_smuggling_refused(t: Transcript) -> None:
    assert t.replies == [
        R.SENDER_OK,
        R.RECIPIENT_OK,
        R.START_MAIL_INPUT,
        R.BARE_LINE_ENDING_IN_DATA,
        R.BYE,
    ]
    assert t.messages == []
    assert len(t.of_type(MailFrom)) == 1
    assert str(R.BARE_LINE_ENDING_IN_DATA).startswith("550 5.6.11")


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_bare_lf_dot_bare_lf_does_not_end_data(chunk_size: int | None) -> None:
    assert_smuggling_refused(smuggle(b"\n.\n", chunk_size))


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_bare_cr_dot_bare_cr_does_not_end_data(chunk_size: int | None) -> None:
    assert_smuggling_refused(smuggle(b"\r.\r", chunk_size))


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_bare_lf_dot_crlf_does_not_end_data(chunk_size: int | None) -> None:
    assert_smuggling_refused(smuggle(b"\n.\r\n", chunk_size))


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_crlf_dot_bare_lf_does_not_end_data(chunk_size: int | None) -> None:
    assert_smuggling_refused(smuggle(b"\r\n.\n", chunk_size))


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_bare_cr_dot_crlf_does_not_end_data(chunk_size: int | None) -> None:
    assert_smuggling_refused(smuggle(b"\r.\r\n", chunk_size))


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_crlf_dot_bare_cr_does_not_end_data(chunk_size: int | None) -> None:
    assert_smuggling_refused(smuggle(b"\r\n.\r", chunk_size))


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_crlf_dot_crlf_ends_data(chunk_size: int | None) -> None:
    t = smuggle(b"\r\n.\r\n", chunk_size)
    # The control case: here the "smuggled" part really is a second transaction.
    assert t.codes == [250, 250, 354, 250, 250, 250, 354, 250, 221]
    assert [m.data for m in t.messages] == [b"Subject: hi\r\n\r\nhello\r\n", b"evil\r\n"]


@pytest.mark.parametrize("bare", [b"\n", b"\r", b"\r\r\n", b"\n\r"])
def test_message_with_bare_line_ending_is_refused_550_5_6_11(bare: bytes) -> None:
    t = drive(ready_core(), MAIL + RCPT + b"DATA\r\nline" + bare + b"more\r\n.\r\n")
    assert t.replies[-1] == R.BARE_LINE_ENDING_IN_DATA
    assert t.messages == []


def test_bare_lf_in_command_line_is_refused() -> None:
    t = drive(ready_core(), b"NOOP\nNOOP\rx\r\nNOOP\r\n")
    assert t.replies == [R.BARE_LINE_ENDING_IN_COMMAND, R.BARE_LINE_ENDING_IN_COMMAND, R.OK]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_dot_stuffed_lines_are_unstuffed(chunk_size: int | None) -> None:
    body = b"..leading\r\n...\r\n..\r\nmid.dle\r\n.x\r\n"
    t = drive(ready_core(), MAIL + RCPT + b"DATA\r\n" + body + b".\r\n", chunk_size=chunk_size)
    assert t.messages[0].data == b".leading\r\n..\r\n.\r\nmid.dle\r\nx\r\n"


def test_empty_message_ends_at_once() -> None:
    t = drive(ready_core(), MAIL + RCPT + b"DATA\r\n.\r\n")
    assert t.messages[0].data == b""


def test_peer_closing_mid_data_delivers_nothing() -> None:
    t = drive(ready_core(), MAIL + RCPT + b"DATA\r\nhalf a message\r\n", eof=True)
    assert t.messages == []
    assert t.closed == ConnectionClosed(CloseReason.PEER_CLOSED, None)


# --- greeting and policy closes ----------------------------------------------------------


def test_refused_greeting_554_serves_only_quit() -> None:
    def decide(event: DecisionEvent) -> Reply | None:
        return Reply.build(554, "5.7.1", "No service") if isinstance(event, Connected) else None

    core = new_core()
    t = drive(core, EHLO + b"QUIT\r\n", decide=decide)
    assert t.replies == [Reply.build(554, "5.7.1", "No service"), R.NO_SERVICE_SEND_QUIT, R.BYE]


def test_policy_421_closes_the_connection() -> None:
    busy = Reply.build(421, "4.7.0", "Try again later")

    def decide(event: DecisionEvent) -> Reply | None:
        return busy if isinstance(event, RcptTo) else None

    t = drive(ready_core(), MAIL + RCPT + b"NOOP\r\n", decide=decide)
    assert t.replies == [R.SENDER_OK, busy]
    assert t.closed == ConnectionClosed(CloseReason.POLICY, busy)


def test_refused_greeting_421_closes() -> None:
    busy = Reply.build(421, "4.3.2", "Busy")
    t = drive(new_core(), EHLO, decide=lambda e: busy)
    assert t.replies == [busy]
    assert t.closed == ConnectionClosed(CloseReason.POLICY, busy)


# --- properties (hypothesis) ---------------------------------------------------------------

_LINES = [
    b"EHLO h\r\n",
    b"HELO h\r\n",
    b"MAIL FROM:<a@b.example>\r\n",
    b"MAIL FROM:<>\r\n",
    b"RCPT TO:<r@b.example>\r\n",
    b"DATA\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH LOGIN\r\n",
    b"AUTH PLAIN AGFwaWtleQBzZWNyZXQ=\r\n",
    b"YXBpa2V5\r\n",
    b"*\r\n",
    b".\r\n",
    b"..\r\n",
    b"\r\n.\r\n",
    b"\n.\n",
    b"\r.\r",
    b"QUIT\r\n",
    b"x" * 600,
]
_streams = st.lists(st.one_of(st.sampled_from(_LINES), st.binary(max_size=24)), max_size=40)


def _deciding(verdicts: list[bool]) -> Decide:
    count = 0

    def decide(event: DecisionEvent) -> Reply | None:
        nonlocal count
        ok = verdicts[count % len(verdicts)] if verdicts else True
        count += 1
        if ok:
            return None
        return Reply.build(451, "4.3.0", "No") if isinstance(event, MessageData) else R.AUTH_FAILED

    return decide


@settings(max_examples=300, deadline=None)
@given(parts=_streams, chunk_size=st.integers(1, 40), verdicts=st.lists(st.booleans(), max_size=8))
def test_random_streams_never_raise_and_chunking_never_changes_replies(
    parts: list[bytes], chunk_size: int, verdicts: list[bool]
) -> None:
    data = b"".join(parts)
    options = {"tls_available": True, "auth_mode": AuthMode.ALWAYS}
    limits = SmtpLimits(max_message_size=200, max_errors=50)
    whole = drive(new_core(limits=limits, **options), data, decide=_deciding(verdicts), eof=True)
    pieces = drive(
        new_core(limits=limits, **options),
        data,
        decide=_deciding(verdicts),
        chunk_size=chunk_size,
        eof=True,
    )
    if b"STARTTLS" not in data.upper():
        # With STARTTLS, what arrived together with it is dropped by design.
        assert whole.output == pieces.output
        assert whole.events == pieces.events
    parse_replies(pieces.output)  # well-formed, every multi-line reply terminated
    assert whole.closed is not None


_MODEL_COMMANDS = [
    "NOOP",
    "VRFY someone",
    "HELP",
    "RSET",
    "BOGUS",
    "MAIL FROM:<a@b.example>",
    "RCPT TO:<r@b.example>",
    "EHLO again",
    "RCPT TO:<bad>",
]


def _expected_code(command: str, state: str) -> tuple[int, str]:
    """A tiny independent model of the reply to each command (everything accepted)."""
    if command in ("NOOP", "RSET", "EHLO again"):
        return 250, ("ready" if command != "NOOP" else state)
    if command == "VRFY someone":
        return 252, state
    if command == "HELP":
        return 214, state
    if command == "BOGUS":
        return 500, state
    if command.startswith("MAIL"):
        return (503, state) if state != "ready" else (250, "mail")
    if command == "RCPT TO:<bad>":
        return (501, state) if state != "ready" else (503, state)
    return (503, state) if state == "ready" else (250, "rcpt")


@settings(max_examples=300, deadline=None)
@given(commands=st.lists(st.sampled_from(_MODEL_COMMANDS), max_size=30), chunk=st.integers(1, 50))
def test_pipelined_replies_come_in_command_order(commands: list[str], chunk: int) -> None:
    limits = SmtpLimits(max_errors=1000, max_commands_without_transaction=1000)
    data = EHLO + b"".join(c.encode() + b"\r\n" for c in commands)
    t = drive(new_core(limits=limits), data, chunk_size=chunk)
    state = "ready"
    expected = [220, 250]
    for command in commands:
        code, state = _expected_code(command, state)
        expected.append(code)
    assert t.codes == expected
