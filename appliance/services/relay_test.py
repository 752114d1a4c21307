"""The relay test: one full SMTP transaction against a smart host, reported step by step.

``run_relay_test`` connects as the delivery engine would (``net.smtp_client``),
says EHLO, upgrades with STARTTLS (or starts with implicit TLS), authenticates,
sends a small test message (MAIL, RCPT, DATA) and says QUIT. Every step is
reported with the server's reply and the time it took; the first step that
fails ends the test, and the report's ``message`` says in one sentence which
step failed, what the server said and what to check, following the
troubleshooting checklist operators know from hosted relays (reachability,
TLS and certificate, credentials and mechanism, sender and recipient rights).

Each step has a short deadline (:data:`RELAY_TEST_TIMEOUTS`, 10 s) so a
firewall that drops packets answers the test in seconds, not minutes.
"""

from __future__ import annotations

import email.utils
import ssl
from dataclasses import dataclass, field

import trio

from appliance.domain.secret_box import SecretBox
from appliance.net.smtp_client import SmtpConnection, SmtpTimeouts, connect_smtp
from appliance.net.smtp_client_errors import (
    SmtpSessionError,
    SmtpTimeout,
    TlsNegotiationFailed,
)
from appliance.protocols.smtp_client_errors import AuthUnavailable, LocalRefusal
from appliance.protocols.smtp_client_events import AuthMechanism, Extensions
from appliance.protocols.smtp_client_outcome import Step
from appliance.protocols.smtp_reply import Reply
from appliance.store.relays import AuthMechanismName, Relay, TlsMode

__all__ = [
    "RELAY_TEST_TIMEOUTS",
    "RelayEndpoint",
    "RelayTestReport",
    "StepReport",
    "relay_test_message",
    "relay_tls_context",
    "run_relay_test",
]

RELAY_TEST_TIMEOUTS = SmtpTimeouts(
    connect=10, greeting=10, command=10, tls_handshake=10, data_block=10, data_end=10, close=5
)
DEFAULT_PORTS: dict[TlsMode, int] = {"starttls": 587, "implicit": 465, "none": 25}


@dataclass(frozen=True, slots=True)
class RelayEndpoint:
    """How to reach and log in to a relay, with the password in clear (never log it)."""

    host: str
    port: int
    tls_mode: TlsMode
    verify_tls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth_mechanism: AuthMechanismName | None = None
    name: str = "inline"  # the stored relay's name, for messages

    @property
    def server(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class StepReport:
    step: Step
    ok: bool
    reply: Reply | None
    detail: str
    elapsed_ms: int


@dataclass(frozen=True, slots=True)
class RelayTestReport:
    endpoint: RelayEndpoint
    steps: tuple[StepReport, ...]
    failed_step: Step | None
    message: str

    @property
    def ok(self) -> bool:
        return self.failed_step is None


def endpoint_for(relay: Relay, secrets: SecretBox) -> RelayEndpoint:
    """A stored relay with its password decrypted (SecretBoxError if it cannot be)."""
    password = secrets.decrypt(relay.password).decode("utf-8") if relay.password else None
    return RelayEndpoint(
        host=relay.host,
        port=relay.port,
        tls_mode=relay.tls_mode,
        verify_tls=relay.verify_tls,
        username=relay.username,
        password=password,
        auth_mechanism=relay.auth_mechanism,
        name=relay.name,
    )


def relay_tls_context(verify: bool) -> ssl.SSLContext:
    """The TLS context for a relay: the system's trust store, or no checks at all."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def relay_test_message(*, envelope_from: str, recipient: str, helo_name: str, server: str) -> bytes:
    """The small message the test sends: it says what it is, so nobody wonders."""
    lines = [
        f"From: Postyard relay test <{envelope_from}>",
        f"To: <{recipient}>",
        "Subject: Postyard relay test",
        f"Date: {email.utils.formatdate(localtime=False)}",
        f"Message-ID: {email.utils.make_msgid('relaytest', domain=helo_name)}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "Auto-Submitted: auto-generated",
        "X-Postyard-Relay-Test: yes",
        "",
        "This is a Postyard relay test.",
        "",
        f"The Postyard appliance {helo_name} checked that the relay {server}",
        "accepts its mail (EHLO, TLS, AUTH, MAIL, RCPT, DATA). It did.",
        "You can delete this message.",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")


# ---------------------------------------------------------------- step recording


@dataclass(slots=True)
class _Draft:
    step: Step
    elapsed: float
    replies: list[Reply] = field(default_factory=list)
    ok: bool = True
    detail: str = ""
    error: SmtpSessionError | None = None

    @property
    def reply(self) -> Reply | None:
        return self.replies[-1] if self.replies else None


class _Recorder:
    """The ``SessionTrace`` of the test: consecutive events of one step make one report."""

    def __init__(self) -> None:
        self.drafts: list[_Draft] = []
        self._last = trio.current_time()

    def _lap(self) -> float:
        now = trio.current_time()
        elapsed, self._last = now - self._last, now
        return elapsed

    def __call__(self, step: Step, reply: Reply | None) -> None:
        elapsed = self._lap()
        last = self.drafts[-1] if self.drafts else None
        if last is None or last.step is not step:
            last = _Draft(step, 0.0)
            self.drafts.append(last)
        last.elapsed += elapsed
        if reply is not None:
            last.replies.append(reply)
            last.ok = reply.code < 400

    def fail(
        self,
        step: Step,
        detail: str,
        reply: Reply | None = None,
        error: SmtpSessionError | None = None,
    ) -> None:
        """``step`` failed: mark it (if its reply was traced) or add it."""
        elapsed = self._lap()
        last = self.drafts[-1] if self.drafts else None
        if last is None or last.step is not step:
            last = _Draft(step, 0.0)
            self.drafts.append(last)
        last.elapsed += elapsed
        if reply is not None and (not last.replies or last.replies[-1] != reply):
            last.replies.append(reply)
        last.ok = False
        last.detail = detail
        last.error = error

    def last_step(self) -> Step | None:
        return self.drafts[-1].step if self.drafts else None

    def first_failure(self) -> _Draft | None:
        return next((d for d in self.drafts if not d.ok), None)


# ---------------------------------------------------------------- the test


async def run_relay_test(
    endpoint: RelayEndpoint,
    *,
    helo_name: str,
    envelope_from: str,
    recipient: str,
    timeouts: SmtpTimeouts = RELAY_TEST_TIMEOUTS,
) -> RelayTestReport:
    """Run the whole transaction against ``endpoint``; never raises for the relay's faults.

    Certificates are checked against the system's trust store (``SSL_CERT_FILE``
    and ``SSL_CERT_DIR`` change it) unless ``endpoint.verify_tls`` is off.
    """
    recorder = _Recorder()
    try:
        connection = await connect_smtp(
            endpoint.host,
            endpoint.port,
            helo_name=helo_name,
            tls_context=relay_tls_context(endpoint.verify_tls),
            starttls="required" if endpoint.tls_mode == "starttls" else "never",
            implicit_tls=endpoint.tls_mode == "implicit",
            timeouts=timeouts,
            pipelining=False,  # one command at a time: each step gets its own reply and time
            trace=recorder,
        )
    except SmtpSessionError as exc:
        recorder.fail(exc.step, str(exc), exc.reply, exc)
        return _report(endpoint, recorder, envelope_from, recipient)
    try:
        await _transaction(connection, endpoint, recorder, helo_name, envelope_from, recipient)
    finally:
        with trio.CancelScope(shield=True):
            await connection.quit()  # never raises; its reply, if any, is traced
    if recorder.first_failure() is None and recorder.last_step() is not Step.QUIT:
        recorder.fail(Step.QUIT, f"{endpoint.server} did not answer QUIT")
    return _report(endpoint, recorder, envelope_from, recipient)


async def _transaction(
    connection: SmtpConnection,
    endpoint: RelayEndpoint,
    recorder: _Recorder,
    helo_name: str,
    envelope_from: str,
    recipient: str,
) -> None:
    """AUTH (when configured), then the test message; failures go into ``recorder``."""
    try:
        if endpoint.username is not None:
            mechanism = AuthMechanism(endpoint.auth_mechanism) if endpoint.auth_mechanism else None
            # Never without TLS: the API refuses a username with tls_mode "none".
            await connection.authenticate(
                endpoint.username, endpoint.password or "", mechanism=mechanism
            )
        message = relay_test_message(
            envelope_from=envelope_from,
            recipient=recipient,
            helo_name=helo_name,
            server=endpoint.server,
        )
        result = await connection.send_message(envelope_from, [recipient], message)
    except SmtpSessionError as exc:
        recorder.fail(exc.step, str(exc), exc.reply, exc)
        return
    except LocalRefusal as exc:  # the server offers no AUTH mechanism we speak, SIZE too small
        recorder.fail(Step.AUTH if isinstance(exc, AuthUnavailable) else Step.MAIL, str(exc))
        return
    if result.failed_step is not None:
        failure = result.failure
        recorder.fail(
            result.failed_step,
            f"{endpoint.server} answered {failure}" if failure else "the server refused",
            failure,
        )


# ---------------------------------------------------------------- wording


def _ok_detail(draft: _Draft, endpoint: RelayEndpoint, envelope_from: str, recipient: str) -> str:
    reply = draft.reply
    match draft.step:
        case Step.CONNECT:
            tls = " and completed the TLS handshake (implicit TLS)"
            return f"connected to {endpoint.server}" + (
                tls if endpoint.tls_mode == "implicit" else ""
            )
        case Step.GREETING:
            return "the server greeted us"
        case Step.EHLO:
            params = Extensions.from_ehlo(reply).params if reply else {}
            offers = [f"{k} {v}".strip() for k, v in sorted(params.items())]
            return "the server offers " + (", ".join(offers) if offers else "no extensions")
        case Step.STARTTLS:
            checked = (
                "certificate verified"
                if endpoint.verify_tls
                else "certificate not checked: verify_tls is off"
            )
            return f"TLS established ({checked})"
        case Step.AUTH:
            return f"logged in as {endpoint.username}"
        case Step.MAIL:
            return f"sender <{envelope_from}> accepted"
        case Step.RCPT:
            return f"recipient <{recipient}> accepted"
        case Step.DATA:
            return "test message accepted"
        case Step.QUIT:
            return "session closed"
        case _:
            return ""


def _advice(step: Step, endpoint: RelayEndpoint, exc: SmtpSessionError | None) -> str:
    server, host, port = endpoint.server, endpoint.host, endpoint.port
    timeout = isinstance(exc, SmtpTimeout)
    match step:
        case Step.CONNECT if isinstance(exc, TlsNegotiationFailed):
            return (
                f"check that port {port} speaks implicit TLS (usually 465; 587 uses STARTTLS) "
                f"and that the certificate is valid for {host} "
                f"(openssl s_client -connect {host}:{port})"
            )
        case Step.CONNECT:
            return (
                f"check the host and port, and that {server} is reachable from this appliance "
                f"(firewall, security groups; try telnet {host} {port})"
            )
        case Step.GREETING | Step.EHLO if timeout:
            return f"check that {server} is an SMTP server and that it accepts this appliance"
        case Step.GREETING | Step.EHLO:
            return "check that the relay accepts connections from this appliance's address"
        case Step.STARTTLS:
            return (
                f"check that {server} offers STARTTLS (usually on port 587; 465 needs "
                '"tls_mode": "implicit") and that its certificate is valid for '
                f"{host} (openssl s_client -connect {host}:{port} -starttls smtp); "
                'a private CA needs "verify_tls": false'
            )
        case Step.AUTH:
            return (
                "check the username and password, and that the server accepts PLAIN or LOGIN "
                "(the ehlo step lists what it offers)"
            )
        case Step.MAIL:
            return "check that this account may send as the test's from address and its domain"
        case Step.RCPT:
            return (
                "check that the relay lets this account relay to the test's to address "
                "(relay access for the appliance's login or address)"
            )
        case Step.DATA:
            return "check the relay's message size and content policies"
        case Step.QUIT:
            return "the test message was accepted; the relay only ended the session badly"
        case _:
            return "see the step's detail"


_TLS_WORDS: dict[TlsMode, str] = {
    "starttls": "with STARTTLS",
    "implicit": "with implicit TLS",
    "none": "without TLS",
}


def _report(
    endpoint: RelayEndpoint,
    recorder: _Recorder,
    envelope_from: str,
    recipient: str,
) -> RelayTestReport:
    steps = tuple(
        StepReport(
            d.step,
            d.ok,
            d.reply,
            d.detail if not d.ok else _ok_detail(d, endpoint, envelope_from, recipient),
            round(d.elapsed * 1000),
        )
        for d in recorder.drafts
    )
    failed = recorder.first_failure()
    if failed is None:
        login = f", logged in as {endpoint.username}" if endpoint.username else ""
        message = (
            f"The relay {endpoint.server} accepted the test message for <{recipient}> "
            f"({_TLS_WORDS[endpoint.tls_mode]}{login})."
        )
        return RelayTestReport(endpoint, steps, None, message)
    reply = failed.reply
    refused = reply is not None and not reply.is_positive() and str(reply) not in failed.detail
    said = f"; the server said {reply}" if refused else ""
    advice = _advice(failed.step, endpoint, failed.error)
    message = (
        f"The relay test failed at {failed.step.value}: {failed.detail}{said}. "
        f"{advice[0].upper()}{advice[1:]}."
    )
    return RelayTestReport(endpoint, steps, failed.step, message)
