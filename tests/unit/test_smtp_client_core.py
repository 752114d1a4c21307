"""The sans-io SMTP client core: bytes in, events and bytes out (h11 test_io style)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import cast

import pytest

from appliance.protocols.smtp_client import SmtpClient
from appliance.protocols.smtp_client_errors import (
    AuthUnavailable,
    LocalProtocolError,
    MessageTooBig,
    RemoteProtocolError,
    SmtpUtf8Unsupported,
)
from appliance.protocols.smtp_client_events import (
    NEED_DATA,
    Command,
    ConnectionClosed,
    Event,
    Extensions,
    ReplyReceived,
)
from appliance.protocols.smtp_client_message import (
    dot_stuff,
    normalise_line_ends,
    prepare_message,
)
from appliance.protocols.smtp_client_outcome import (
    RecipientResult,
    Step,
    TransactionResult,
    TransactionTally,
)
from appliance.protocols.smtp_client_state import TRANSITIONS, State, Trigger
from appliance.protocols.smtp_reply import EnhancedStatus, Reply
from appliance.protocols.smtp_reply_reader import ReplyReader, ReplySyntaxError

GREETING = b"220 mx.example.com ESMTP ready\r\n"
EHLO_FULL = (
    b"250-mx.example.com hello\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 10240000\r\n"
    b"250-STARTTLS\r\n"
    b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n"
    b"250-8BITMIME\r\n"
    b"250-SMTPUTF8\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250 CHUNKING\r\n"
)
EHLO_PLAIN = b"250-mx.example.com\r\n250 8BITMIME\r\n"

Feeder = Callable[[SmtpClient, bytes], list[Event]]


def _drain(client: SmtpClient) -> list[Event]:
    events: list[Event] = []
    while True:
        event = client.next_event()
        if event is NEED_DATA:
            return events
        assert not isinstance(event, type(NEED_DATA))
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events


def feed_whole(client: SmtpClient, data: bytes) -> list[Event]:
    client.receive_data(data)
    return _drain(client)


def feed_bytewise(client: SmtpClient, data: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(len(data)):
        client.receive_data(data[i : i + 1])
        events.extend(_drain(client))
    return events


FEEDERS = [pytest.param(feed_whole, id="whole"), pytest.param(feed_bytewise, id="bytewise")]


@pytest.fixture(params=FEEDERS)
def feed(request: pytest.FixtureRequest) -> Feeder:
    return cast(Feeder, request.param)


def state_of(client: SmtpClient) -> State:
    """Read afresh (a call, so the type checker does not narrow it between steps)."""
    return client.state


def replies(events: list[Event]) -> list[tuple[Command, int]]:
    return [(e.command, e.reply.code) for e in events if isinstance(e, ReplyReceived)]


def ready_client(feed: Feeder, ehlo: bytes = EHLO_FULL) -> SmtpClient:
    client = SmtpClient(helo_name="out.example.net")
    assert replies(feed(client, GREETING)) == [(Command.GREETING, 220)]
    assert client.ehlo() == b"EHLO out.example.net\r\n"
    assert replies(feed(client, ehlo)) == [(Command.EHLO, 250)]
    assert state_of(client) is State.READY
    return client


# -- The reply reader ---------------------------------------------------------


def test_reader_joins_multiline_reply_and_splits_enhanced_code() -> None:
    reader = ReplyReader()
    reader.feed(b"550-5.1.1 No such user\r\n550 5.1.1 here\r\n")
    reply = reader.next_reply()
    assert reply == Reply(550, ("No such user", "here"), EnhancedStatus(5, 1, 1))
    assert reader.next_reply() is None


def test_reader_accepts_bare_code_and_bare_lf() -> None:
    reader = ReplyReader()
    reader.feed(b"250\n")
    assert reader.next_reply() == Reply(250, ("",))


@pytest.mark.parametrize(
    "data",
    [
        b"25O ok\r\n",
        b"hello\r\n",
        b"250*ok\r\n",
        b"250-first\r\n251 second\r\n",
        b"199 too low\r\n",
        b"600 too high\r\n",
    ],
)
def test_reader_rejects_malformed_replies(data: bytes) -> None:
    reader = ReplyReader()
    reader.feed(data)
    with pytest.raises(ReplySyntaxError):
        reader.next_reply()


def test_reader_rejects_endless_line_before_its_end_arrives() -> None:
    reader = ReplyReader(max_line_bytes=100)
    reader.feed(b"250 " + b"x" * 200)
    with pytest.raises(ReplySyntaxError, match="longer than 100"):
        reader.next_reply()


def test_reader_rejects_absurdly_long_multiline_reply() -> None:
    reader = ReplyReader()
    reader.feed(b"250-" + b"x" * 1000 + b"\r\n")
    for _ in range(70):
        reader.feed(b"250-" + b"x" * 1000 + b"\r\n")
    with pytest.raises(ReplySyntaxError, match="larger than 65536"):
        reader.next_reply()


# -- Greeting, EHLO, HELO ----------------------------------------------------


def test_greeting_and_ehlo_capabilities(feed: Feeder) -> None:
    client = ready_client(feed)
    ext = client.extensions
    assert ext.pipelining
    assert ext.starttls
    assert ext.eight_bit_mime
    assert ext.smtputf8
    assert ext.enhanced_status_codes
    assert ext.size_limit == 10240000
    assert ext.auth_mechanisms == frozenset({"PLAIN", "LOGIN", "CRAM-MD5"})
    assert ext.has("chunking")  # parsed, never used
    assert client.greeting is not None
    assert client.greeting.text == "mx.example.com ESMTP ready"


def test_extensions_parse_old_auth_form_and_size_without_limit() -> None:
    reply = Reply(250, ("mx", "AUTH=LOGIN", "SIZE", "auth plain"))
    ext = Extensions.from_ehlo(reply)
    assert ext.size_limit == 0
    assert ext.auth_mechanisms == frozenset({"LOGIN", "PLAIN"})


def test_multiline_greeting(feed: Feeder) -> None:
    client = SmtpClient(helo_name="out.example.net")
    events = feed(client, b"220-mx.example.com\r\n220-no UCE\r\n220 ready\r\n")
    assert replies(events) == [(Command.GREETING, 220)]
    assert client.greeting is not None
    assert client.greeting.lines == ("mx.example.com", "no UCE", "ready")


@pytest.mark.parametrize("code", [500, 502])
def test_helo_fallback_when_ehlo_not_understood(feed: Feeder, code: int) -> None:
    client = SmtpClient(helo_name="out.example.net")
    feed(client, GREETING)
    client.ehlo()
    assert replies(feed(client, f"{code} what?\r\n".encode())) == [(Command.EHLO, code)]
    assert state_of(client) is State.GREETED
    assert client.helo() == b"HELO out.example.net\r\n"
    assert replies(feed(client, b"250 mx.example.com\r\n")) == [(Command.HELO, 250)]
    assert state_of(client) is State.READY
    assert not client.extensions.pipelining
    assert client.extensions.size_limit is None


def test_greeting_refused_allows_only_quit(feed: Feeder) -> None:
    client = SmtpClient(helo_name="out.example.net")
    feed(client, b"554 5.7.1 go away\r\n")
    assert state_of(client) is State.REJECTED
    with pytest.raises(LocalProtocolError, match="state REJECTED"):
        client.ehlo()
    assert client.quit() == b"QUIT\r\n"
    assert replies(feed(client, b"221 bye\r\n")) == [(Command.QUIT, 221)]
    assert state_of(client) is State.CLOSED


def test_ehlo_refused_with_554_does_not_fall_back(feed: Feeder) -> None:
    client = SmtpClient(helo_name="out.example.net")
    feed(client, GREETING)
    client.ehlo()
    feed(client, b"554 5.7.1 no thanks\r\n")
    assert state_of(client) is State.REJECTED


def test_reply_arriving_early_waits_for_its_command() -> None:
    """Trailing data: the EHLO reply comes with the greeting, before EHLO was sent."""
    client = SmtpClient(helo_name="out.example.net")
    client.receive_data(GREETING + EHLO_FULL)
    assert replies(_drain(client)) == [(Command.GREETING, 220)]
    assert client.next_event() is NEED_DATA
    client.ehlo()
    assert replies(_drain(client)) == [(Command.EHLO, 250)]
    assert client.extensions.pipelining


# -- Mail transactions -------------------------------------------------------


def test_pipelined_transaction_matches_replies_in_order(feed: Feeder) -> None:
    client = ready_client(feed)
    message = prepare_message(b"Subject: hi\r\n\r\nbody\r\n", envelope_from="a@example.net")
    batch = (
        client.mail("a@example.net", message)
        + client.rcpt("x@example.com")
        + client.rcpt("y@example.com")
        + client.rcpt("z@example.com")
        + client.data()
    )
    assert batch == (
        b"MAIL FROM:<a@example.net> SIZE=21\r\n"
        b"RCPT TO:<x@example.com>\r\nRCPT TO:<y@example.com>\r\nRCPT TO:<z@example.com>\r\n"
        b"DATA\r\n"
    )
    assert client.pending == (Command.MAIL, Command.RCPT, Command.RCPT, Command.RCPT, Command.DATA)
    assert state_of(client) is State.DATA_SENT
    events = feed(
        client,
        b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 unknown\r\n250 2.1.5 ok\r\n354 go ahead\r\n",
    )
    tally = TransactionTally("a@example.net")
    for event in events:
        assert isinstance(event, ReplyReceived)
        tally.record(event)
    assert [e.argument for e in events if isinstance(e, ReplyReceived)][1:4] == [
        "x@example.com",
        "y@example.com",
        "z@example.com",
    ]
    assert state_of(client) is State.MESSAGE
    assert client.message(message) == b"Subject: hi\r\n\r\nbody\r\n.\r\n"
    for event in feed(client, b"250 2.0.0 queued as 123\r\n"):
        assert isinstance(event, ReplyReceived)
        tally.record(event)
    assert state_of(client) is State.READY
    result = tally.result()
    assert result.delivered
    assert result.failed_step is None
    assert result.accepted == ("x@example.com", "z@example.com")
    assert [r.recipient for r in result.refused] == ["y@example.com"]
    reply_y = result.reply_for("y@example.com")
    assert reply_y is not None
    assert reply_y.enhanced == EnhancedStatus(5, 1, 1)


def test_without_pipelining_a_second_command_must_wait(feed: Feeder) -> None:
    client = ready_client(feed, EHLO_PLAIN)
    client.mail("a@example.net")
    with pytest.raises(LocalProtocolError, match="does not offer PIPELINING"):
        client.rcpt("x@example.com")
    feed(client, b"250 ok\r\n")
    assert client.rcpt("x@example.com") == b"RCPT TO:<x@example.com>\r\n"


def test_data_cannot_be_followed_in_a_pipelined_batch(feed: Feeder) -> None:
    client = ready_client(feed)
    client.mail("a@example.net")
    client.rcpt("x@example.com")
    client.data()
    with pytest.raises(LocalProtocolError, match="state DATA_SENT"):
        client.rset()


def test_rset_between_messages_in_one_batch(feed: Feeder) -> None:
    client = ready_client(feed)
    batch = client.rset() + client.mail("a@example.net") + client.rcpt("x@example.com")
    assert batch.startswith(b"RSET\r\nMAIL FROM:<a@example.net>")
    events = feed(client, b"250 flushed\r\n250 ok\r\n250 ok\r\n")
    assert replies(events) == [(Command.RSET, 250), (Command.MAIL, 250), (Command.RCPT, 250)]


def test_failed_mail_leaves_transaction_to_be_reset(feed: Feeder) -> None:
    client = ready_client(feed, EHLO_PLAIN)
    client.mail("a@example.net")
    feed(client, b"451 4.3.0 try later\r\n")
    assert state_of(client) is State.MAIL
    client.rset()
    feed(client, b"250 ok\r\n")
    assert state_of(client) is State.READY


def test_data_refused_returns_to_ready(feed: Feeder) -> None:
    client = ready_client(feed)
    client.mail("a@example.net")
    client.rcpt("x@example.com")
    client.data()
    events = feed(client, b"250 ok\r\n550 no\r\n554 5.5.1 no valid recipients\r\n")
    assert replies(events)[-1] == (Command.DATA, 554)
    assert state_of(client) is State.READY


def test_mail_parameters_size_8bitmime_smtputf8(feed: Feeder) -> None:
    client = ready_client(feed)
    message = prepare_message(
        "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode(),
        envelope_from="a@example.net",
        recipients=["j\u00f6rg@example.de"],
    )
    assert message.eight_bit
    assert message.needs_smtputf8
    line = client.mail("a@example.net", message)
    assert (
        line == f"MAIL FROM:<a@example.net> SIZE={message.size} BODY=8BITMIME SMTPUTF8\r\n".encode()
    )
    assert client.rcpt("j\u00f6rg@example.de") == "RCPT TO:<j\u00f6rg@example.de>\r\n".encode()


def test_8bit_body_alone_does_not_need_smtputf8() -> None:
    message = prepare_message("Subject: x\r\n\r\nna\u00efve\r\n".encode())
    assert message.eight_bit
    assert not message.needs_smtputf8


def test_smtputf8_needed_but_not_offered_is_refused_locally(feed: Feeder) -> None:
    client = ready_client(feed, EHLO_PLAIN)
    message = prepare_message(b"Subject: x\r\n\r\nhi\r\n", recipients=["j\u00f6rg@example.de"])
    with pytest.raises(SmtpUtf8Unsupported, match="SMTPUTF8") as info:
        client.mail("a@example.net", message)
    assert info.value.enhanced == EnhancedStatus(5, 6, 7)
    assert state_of(client) is State.READY
    assert client.pending == ()


def test_message_over_advertised_size_is_refused_locally(feed: Feeder) -> None:
    client = ready_client(feed, b"250-mx\r\n250 SIZE 10\r\n")
    with pytest.raises(MessageTooBig, match="SIZE limit of 10"):
        client.mail("a@example.net", prepare_message(b"x" * 100))


def test_null_sender_and_injection_attempts() -> None:
    client = SmtpClient(helo_name="out.example.net")
    client.receive_data(GREETING + EHLO_FULL)
    _drain(client)
    client.ehlo()
    _drain(client)
    assert client.mail("").startswith(b"MAIL FROM:<>")
    with pytest.raises(LocalProtocolError, match="invalid recipient"):
        client.rcpt("x@example.com>\r\nRCPT TO:<evil@example.org")
    with pytest.raises(LocalProtocolError, match="invalid HELO name"):
        SmtpClient(helo_name="bad name")


# -- Message preparation -------------------------------------------------------


def test_dot_stuffing_of_lines_starting_with_a_dot() -> None:
    assert dot_stuff(b".leading\r\nmid.dle\r\n.\r\n..two\r\n") == (
        b"..leading\r\nmid.dle\r\n..\r\n...two\r\n"
    )
    wire = prepare_message(b".\n.x\nend").wire
    assert wire == b"..\r\n..x\r\nend\r\n.\r\n"


def test_bare_lf_and_bare_cr_become_crlf() -> None:
    assert normalise_line_ends(b"a\nb\rc\r\nd") == b"a\r\nb\r\nc\r\nd\r\n"
    # A smuggled end-of-data made of bare LFs becomes a harmless stuffed line.
    assert prepare_message(b"a\n.\nMAIL FROM:<x>\n").wire == b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"


def test_size_counts_crlf_before_stuffing() -> None:
    message = prepare_message(b"a\n.b\n")
    assert message.size == len(b"a\r\n.b\r\n")
    assert prepare_message(b"").wire == b".\r\n"


# -- STARTTLS and AUTH ---------------------------------------------------------


def test_starttls_resets_to_need_a_fresh_ehlo(feed: Feeder) -> None:
    client = ready_client(feed)
    assert client.starttls() == b"STARTTLS\r\n"
    feed(client, b"220 2.0.0 go ahead\r\n")
    assert state_of(client) is State.TLS_HANDSHAKE
    client.tls_established()
    assert state_of(client) is State.GREETED
    assert client.tls_active
    assert not client.extensions.pipelining  # forgotten until the new EHLO
    with pytest.raises(LocalProtocolError, match="state GREETED"):
        client.mail("a@example.net")
    client.ehlo()
    feed(client, b"250-mx\r\n250 AUTH PLAIN\r\n")
    assert state_of(client) is State.READY
    with pytest.raises(LocalProtocolError, match="already active"):
        client.starttls()


def test_starttls_refused_leaves_session_in_plaintext(feed: Feeder) -> None:
    client = ready_client(feed)
    client.starttls()
    feed(client, b"454 4.7.0 TLS not available\r\n")
    assert state_of(client) is State.READY
    assert not client.tls_active


def test_plaintext_injected_after_starttls_220_is_refused() -> None:
    client = SmtpClient(helo_name="out.example.net")
    client.receive_data(GREETING + EHLO_FULL)
    _drain(client)
    client.ehlo()
    _drain(client)
    client.starttls()
    client.receive_data(b"220 go ahead\r\n250-evil\r\n250 AUTH PLAIN\r\n")
    with pytest.raises(RemoteProtocolError, match="after its 220 reply to STARTTLS"):
        client.next_event()
    assert state_of(client) is State.ERROR


def test_auth_plain_sends_initial_response(feed: Feeder) -> None:
    client = ready_client(feed)
    expected = base64.b64encode(b"\0user\0s3cret").decode()
    assert client.auth("user", "s3cret") == f"AUTH PLAIN {expected}\r\n".encode()
    assert replies(feed(client, b"235 2.7.0 Authentication successful\r\n")) == [
        (Command.AUTH, 235)
    ]
    assert client.authenticated
    assert state_of(client) is State.READY
    with pytest.raises(LocalProtocolError, match="already authenticated"):
        client.auth("user", "s3cret")


def test_auth_login_answers_username_then_password_challenges(feed: Feeder) -> None:
    client = ready_client(feed, b"250-mx\r\n250 AUTH LOGIN\r\n")
    assert client.auth("user", "s3cret") == b"AUTH LOGIN\r\n"
    feed(client, b"334 VXNlcm5hbWU6\r\n")  # "Username:"
    assert state_of(client) is State.AUTH_CHALLENGED
    assert client.auth_response() == base64.b64encode(b"user") + b"\r\n"
    feed(client, b"334 UGFzc3dvcmQ6\r\n")  # "Password:"
    assert client.auth_response() == base64.b64encode(b"s3cret") + b"\r\n"
    feed(client, b"235 ok\r\n")
    assert client.authenticated


def test_auth_login_refused_and_endless_challenges_cancelled(feed: Feeder) -> None:
    client = ready_client(feed, b"250-mx\r\n250 AUTH LOGIN\r\n")
    client.auth("user", "pw")
    for _ in range(2):
        feed(client, b"334 \r\n")
        client.auth_response()
    feed(client, b"334 \r\n")
    assert client.auth_response() == b"*\r\n"
    feed(client, b"501 5.7.0 cancelled\r\n")
    assert state_of(client) is State.READY
    assert not client.authenticated


def test_auth_without_usable_mechanism_is_refused_locally(feed: Feeder) -> None:
    client = ready_client(feed, b"250-mx\r\n250 AUTH CRAM-MD5\r\n")
    with pytest.raises(AuthUnavailable, match="offered: CRAM-MD5"):
        client.auth("user", "pw")


# -- Errors, closing, the state table ------------------------------------------


def test_illegal_call_names_state_and_action() -> None:
    client = SmtpClient(helo_name="out.example.net")
    with pytest.raises(LocalProtocolError) as info:
        client.mail("a@example.net")
    assert info.value.state == "AWAIT_GREETING"
    assert info.value.action == "send MAIL FROM"
    assert "cannot send MAIL FROM in state AWAIT_GREETING" in str(info.value)


def test_unexpected_reply_class_is_remote_error(feed: Feeder) -> None:
    client = ready_client(feed)
    client.mail("a@example.net")
    client.rcpt("x@example.com")
    client.data()
    client.receive_data(b"250 ok\r\n250 ok\r\n250 ok\r\n")  # 250 is no answer to DATA
    assert replies([client.next_event(), client.next_event()]) == [  # type: ignore[list-item]
        (Command.MAIL, 250),
        (Command.RCPT, 250),
    ]
    with pytest.raises(RemoteProtocolError, match="unexpected reply 250 to DATA"):
        client.next_event()
    assert state_of(client) is State.ERROR


def test_421_closes_session_and_drops_outstanding_replies(feed: Feeder) -> None:
    client = ready_client(feed)
    client.mail("a@example.net")
    client.rcpt("x@example.com")
    events = feed(client, b"421 4.3.2 shutting down\r\n")
    assert replies(events) == [(Command.MAIL, 421)]
    assert state_of(client) is State.REJECTED
    assert client.pending == ()
    client.receive_data(b"")
    assert isinstance(client.next_event(), ConnectionClosed)
    assert state_of(client) is State.CLOSED


def test_eof_mid_reply_is_remote_error() -> None:
    client = SmtpClient(helo_name="out.example.net")
    client.receive_data(b"220-mx\r\n220 rea")
    assert client.next_event() is NEED_DATA
    client.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of the reply to greeting"):
        client.next_event()


def test_eof_while_awaiting_reply_gives_connection_closed() -> None:
    client = SmtpClient(helo_name="out.example.net")
    client.receive_data(b"")
    assert isinstance(client.next_event(), ConnectionClosed)
    assert state_of(client) is State.CLOSED


def test_quit(feed: Feeder) -> None:
    client = ready_client(feed)
    assert client.quit() == b"QUIT\r\n"
    assert state_of(client) is State.QUIT_SENT
    assert replies(feed(client, b"221 2.0.0 bye\r\n")) == [(Command.QUIT, 221)]
    assert state_of(client) is State.CLOSED


def test_state_table_shape() -> None:
    """The table itself: a few transitions that must hold, and none out of the end states."""
    assert TRANSITIONS[(State.EHLO_SENT, Trigger.EHLO_NOT_UNDERSTOOD)] is State.GREETED
    assert TRANSITIONS[(State.TLS_HANDSHAKE, Trigger.TLS_ESTABLISHED)] is State.GREETED
    assert TRANSITIONS[(State.RCPT, Trigger.SEND_DATA)] is State.DATA_SENT
    assert (State.MAIL, Trigger.SEND_DATA) not in TRANSITIONS  # DATA needs a RCPT first
    assert TRANSITIONS[(State.MESSAGE_SENT, Trigger.MESSAGE_VERDICT)] is State.READY
    assert not [key for key in TRANSITIONS if key[0] is State.ERROR]
    assert {t for (s, t) in TRANSITIONS if s is State.CLOSED} == set()
    assert all(
        TRANSITIONS[(s, Trigger.SERVICE_CLOSING)] is State.REJECTED
        for s in State
        if s not in (State.CLOSED, State.ERROR, State.QUIT_SENT)
    )
    # Every state can be reached from AWAIT_GREETING.
    reached, frontier = {State.AWAIT_GREETING}, [State.AWAIT_GREETING]
    while frontier:
        state = frontier.pop()
        for (s, _), target in TRANSITIONS.items():
            if s is state and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(State) - {State.ERROR}


# -- Outcome records ------------------------------------------------------------


def test_transaction_result_names_failure() -> None:
    refused = RecipientResult("x@example.com", Reply.build(550, "5.1.1", "unknown"))
    result = TransactionResult(
        "a@example.net", (refused,), mail_reply=Reply(250, ("ok",)), failed_step=Step.RCPT
    )
    assert not result.delivered
    assert result.accepted == ()
    assert result.failure == refused.reply
    with pytest.raises(ValueError, match="positive message_reply"):
        TransactionResult("a@example.net", ())
