"""parse_send_request against bodies the official SendGrid helper builds, and each rule.

Happy paths use the real ``sendgrid.helpers.mail`` classes (``Mail(...).get()``),
so a helper change that our parser does not follow fails here. Each rule test
asserts SendGrid's exact message, dotted field and help URL.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sendgrid.helpers.mail import (
    Asm,
    Attachment,
    BatchId,
    Bcc,
    BccSettings,
    BccSettingsEmail,
    BypassBounceManagement,
    BypassListManagement,
    BypassSpamManagement,
    BypassUnsubscribeManagement,
    Category,
    Cc,
    ClickTracking,
    ContentId,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    FooterHtml,
    FooterSettings,
    FooterText,
    From,
    Ganalytics,
    GroupId,
    GroupsToDisplay,
    Header,
    IpPoolName,
    Mail,
    MailSettings,
    OpenTracking,
    OpenTrackingSubstitutionTag,
    Personalization,
    ReplyTo,
    SandBoxMode,
    Section,
    SendAt,
    SpamCheck,
    SpamThreshold,
    SpamUrl,
    SubscriptionHtml,
    SubscriptionSubstitutionTag,
    SubscriptionText,
    SubscriptionTracking,
    Substitution,
    TemplateId,
    To,
    TrackingSettings,
    UtmCampaign,
    UtmContent,
    UtmMedium,
    UtmSource,
    UtmTerm,
)

from appliance.domain import send_request as sr
from appliance.domain.send_errors import HELP_BASE, SendValidationError
from appliance.domain.send_request import (
    MAX_REQUEST_BYTES,
    EmailAddress,
    Recipient,
    RecipientKind,
    TemplateKind,
)
from appliance.domain.send_validation import parse_send_request

NOW = datetime(2023, 11, 14, 20, 0, tzinfo=UTC)
SOON = 1_700_000_000  # 2023-11-14 22:13:20 UTC, two hours after NOW
SPEC = Path(__file__).parents[3] / "shared/reference/sendgrid-openapi/tsg_mail_v3.json"
EG = (
    'e.g. {"email": "example@example.com"} or '
    '{"email": "example@example.com", "name": "Example Recipient"}'
)


def help_for(anchor: str) -> str:
    return f"{HELP_BASE}#{anchor}"


def errors_of(body: object) -> list[tuple[str, str | None, str | None]]:
    with pytest.raises(SendValidationError) as info:
        parse_send_request(body, now=NOW)
    return [(e.message, e.field, e.help) for e in info.value.errors]


def minimal() -> dict[str, Any]:
    body: dict[str, Any] = Mail(
        from_email="sender@example.com",
        to_emails="rcpt@example.com",
        subject="Hello",
        plain_text_content="Hi",
    ).get()
    return body


# Happy paths: bodies from the official helper


def test_helper_body_with_every_field_parses_into_records() -> None:
    mail = Mail(
        from_email=From("sender@Example.com", "Sender"),
        subject="Hello -name-",
        plain_text_content="Hi -name-",
        html_content="<p>Hi -name-</p>",
        amp_html_content="<html ⚡4email></html>",
    )
    p = Personalization()
    p.add_to(To("alice@example.com", "Alice"))
    p.add_cc(Cc("carol@example.com"))
    p.add_bcc(Bcc("bob@example.com"))
    p.set_from(From("team@example.com", "Team"))
    p.subject = "Hello Alice"
    p.add_header(Header("X-Test", "1"))
    p.add_substitution(Substitution("-name-", "Alice"))
    p.add_custom_arg(CustomArg("user_id", "42"))
    p.send_at = SOON
    mail.add_personalization(p)
    mail.attachment = Attachment(
        FileContent(base64.b64encode(b"\x89PNG").decode()),
        FileName("logo.png"),
        FileType("image/png"),
        Disposition("inline"),
        ContentId("logo"),
    )
    mail.attachment = Attachment(FileContent("aGVsbG8="), FileName("a.txt"), FileType("text/plain"))
    mail.category = [Category("probe"), Category("welcome")]
    mail.asm = Asm(GroupId(7), GroupsToDisplay([7, 8]))
    mail.ip_pool_name = IpPoolName("transactional")
    mail.send_at = SendAt(SOON)
    mail.batch_id = BatchId("batch-1")
    mail.template_id = TemplateId("legacy-template")
    mail.header = Header("X-Campaign", "c")
    mail.custom_arg = CustomArg("campaign", "x")
    mail.section = Section("%footer%", "bye")
    mail.reply_to = ReplyTo("replies@example.com", "Replies")
    settings = MailSettings()
    settings.sandbox_mode = SandBoxMode(True)
    settings.bypass_list_management = BypassListManagement(False)
    settings.bypass_spam_management = BypassSpamManagement(True)
    settings.bypass_bounce_management = BypassBounceManagement(True)
    settings.bypass_unsubscribe_management = BypassUnsubscribeManagement(True)
    settings.footer_settings = FooterSettings(True, FooterText("ft"), FooterHtml("<p>fh</p>"))
    settings.bcc_settings = BccSettings(True, BccSettingsEmail("archive@example.com"))
    settings.spam_check = SpamCheck(True, SpamThreshold(5), SpamUrl("https://spam.example.com"))
    mail.mail_settings = settings
    tracking = TrackingSettings()
    tracking.click_tracking = ClickTracking(True, False)
    tracking.open_tracking = OpenTracking(True, OpenTrackingSubstitutionTag("%open%"))
    tracking.subscription_tracking = SubscriptionTracking(
        True, SubscriptionText("unsub"), SubscriptionHtml("<a>unsub</a>"),
        SubscriptionSubstitutionTag("%unsub%"),
    )  # fmt: skip
    tracking.ganalytics = Ganalytics(
        True, UtmSource("s"), UtmMedium("m"), UtmTerm("t"), UtmContent("c"), UtmCampaign("cp")
    )
    mail.tracking_settings = tracking

    request = parse_send_request(mail.get(), now=NOW)

    assert request.from_address == EmailAddress("sender@example.com", "Sender")
    assert request.subject == "Hello -name-"
    (person,) = request.personalizations
    assert person.to == (EmailAddress("alice@example.com", "Alice"),)
    assert person.cc == (EmailAddress("carol@example.com"),)
    assert person.bcc == (EmailAddress("bob@example.com"),)
    assert person.from_address == EmailAddress("team@example.com", "Team")
    assert person.subject == "Hello Alice"
    assert dict(person.headers) == {"X-Test": "1"}
    assert dict(person.substitutions) == {"-name-": "Alice"}
    assert dict(person.custom_args) == {"user_id": "42"}
    assert person.send_at == datetime.fromtimestamp(SOON, UTC)
    assert [(c.type, c.value) for c in request.content] == [
        ("text/plain", "Hi -name-"),
        ("text/x-amp-html", "<html ⚡4email></html>"),
        ("text/html", "<p>Hi -name-</p>"),
    ]
    assert set(request.attachments) == {  # the helper inserts each at the front
        sr.Attachment(b"\x89PNG", "logo.png", "image/png", sr.Disposition.INLINE, "logo"),
        sr.Attachment(b"hello", "a.txt", "text/plain", sr.Disposition.ATTACHMENT, None),
    }
    assert set(request.categories) == {"probe", "welcome"}
    assert request.asm == sr.Asm(7, (7, 8))
    assert request.ip_pool_name == "transactional"
    assert request.send_at == datetime.fromtimestamp(SOON, UTC)
    assert request.batch_id == "batch-1"
    assert request.template_id == "legacy-template"
    assert request.template_kind is TemplateKind.LEGACY
    assert dict(request.headers) == {"X-Campaign": "c"}
    assert dict(request.custom_args) == {"campaign": "x"}
    assert dict(request.sections) == {"%footer%": "bye"}
    assert request.reply_to == EmailAddress("replies@example.com", "Replies")
    assert request.mail_settings == sr.MailSettings(
        sandbox_mode=True,
        bypass_list_management=False,
        bypass_spam_management=True,
        bypass_bounce_management=True,
        bypass_unsubscribe_management=True,
        footer=sr.Footer(True, "ft", "<p>fh</p>"),
        bcc=sr.BccSetting(True, "archive@example.com"),
        spam_check=sr.SpamCheck(True, 5, "https://spam.example.com"),
    )
    assert request.is_sandbox
    assert request.tracking_settings == sr.TrackingSettings(
        click_tracking=sr.ClickTracking(True, False),
        open_tracking=sr.OpenTracking(True, "%open%"),
        subscription_tracking=sr.SubscriptionTracking(True, "unsub", "<a>unsub</a>", "%unsub%"),
        ganalytics=sr.Ganalytics(True, "s", "m", "t", "c", "cp"),
    )
    assert dict(request.custom_args_for(0)) == {"campaign": "x", "user_id": "42"}
    assert dict(request.headers_for(0)) == {"X-Campaign": "c", "X-Test": "1"}
    assert request.subject_for(0) == "Hello Alice"
    assert request.from_for(0) == EmailAddress("team@example.com", "Team")


def test_dynamic_template_needs_no_subject_or_content_and_keeps_template_data() -> None:
    mail = Mail(from_email="sender@example.com", to_emails=To("alice@example.com"))
    mail.template_id = "d-0123456789abcdef"
    mail.dynamic_template_data = {"name": "Alice", "items": [{"sku": 1}]}

    request = parse_send_request(mail.get(), now=NOW)

    assert request.template_kind is TemplateKind.DYNAMIC
    assert request.subject is None
    assert request.content == ()
    assert request.personalizations[0].dynamic_template_data == {
        "name": "Alice",
        "items": [{"sku": 1}],
    }


def test_is_multiple_makes_one_personalization_per_recipient() -> None:
    body = Mail(
        from_email="sender@example.com",
        to_emails=["a@example.com", "b@example.com"],
        subject="Hi",
        html_content="<p>Hi</p>",
        is_multiple=True,
    ).get()

    request = parse_send_request(body, now=NOW)

    assert list(request.recipients()) == [
        Recipient(0, RecipientKind.TO, EmailAddress("b@example.com")),
        Recipient(1, RecipientKind.TO, EmailAddress("a@example.com")),
    ]


def test_recipients_yields_to_cc_bcc_per_personalization() -> None:
    mail = Mail(from_email="sender@example.com", subject="Hi", plain_text_content="x")
    for n in range(2):
        p = Personalization()
        p.add_to(To(f"to{n}@example.com"))
        p.add_cc(Cc(f"cc{n}@example.com"))
        p.add_bcc(Bcc(f"bcc{n}@example.com"))
        mail.add_personalization(p)

    request = parse_send_request(mail.get(), now=NOW)

    assert [
        (r.personalization_index, r.kind.value, r.address.email) for r in request.recipients()
    ] == [
        (0, "to", "to1@example.com"),  # the helper inserts each personalization first
        (0, "cc", "cc1@example.com"),
        (0, "bcc", "bcc1@example.com"),
        (1, "to", "to0@example.com"),
        (1, "cc", "cc0@example.com"),
        (1, "bcc", "bcc0@example.com"),
    ]


def test_reply_to_list_from_helper_parses() -> None:
    mail = Mail(from_email="s@example.com", to_emails="a@example.com", subject="x")
    mail.add_content("y", "text/plain")
    mail.reply_to_list = [ReplyTo("r1@example.com", "R1"), ReplyTo("r2@example.com")]

    request = parse_send_request(mail.get(), now=NOW)

    assert request.reply_to_list == (
        EmailAddress("r1@example.com", "R1"),
        EmailAddress("r2@example.com"),
    )


@pytest.mark.parametrize("example", ["MailSendNoTemplate", "MailSendDynamicTemplate"])
def test_openapi_spec_examples_parse(example: str) -> None:
    if not SPEC.exists():
        pytest.skip(f"{SPEC} not beside the repository")
    spec = json.loads(SPEC.read_text())
    body = spec["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]
    value = body["examples"][example]["value"]
    spec_now = datetime.fromtimestamp(1617260400, UTC) - timedelta(hours=1)

    request = parse_send_request(value, now=spec_now)

    assert request.categories == ("cake", "pie", "baking")
    assert request.ip_pool_name == "transactional email"


def test_recipient_domains_are_normalized_and_idna_encoded() -> None:
    body = minimal()
    body["personalizations"][0]["to"] = [{"email": "Ann@Bücher.Example"}]

    request = parse_send_request(body, now=NOW)

    assert request.personalizations[0].to == (EmailAddress("Ann@xn--bcher-kva.example"),)


def test_send_at_in_the_past_is_accepted_and_sent_at_once() -> None:
    body = minimal()
    body["send_at"] = 1_600_000_000

    assert parse_send_request(body, now=NOW).send_at == datetime.fromtimestamp(1_600_000_000, UTC)


def test_records_are_frozen() -> None:
    request = parse_send_request(minimal(), now=NOW)
    with pytest.raises(AttributeError):
        request.subject = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        request.personalizations[0].headers["X"] = "y"  # type: ignore[index]


def test_max_request_bytes_is_30_mib() -> None:
    assert MAX_REQUEST_BYTES == 30 * 1024 * 1024


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_send_request(minimal(), now=datetime(2023, 1, 1))


# One test per rule: the exact message, field and help SendGrid answers with

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: object) -> Mutation:
    """Set a dotted path (list indexes as numbers) in the body."""

    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]

    return mutate


def _both(*mutations: Mutation) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(body)

    return mutate


def _recipients(n: int) -> list[dict[str, str]]:
    return [{"email": f"r{i}@example.com"} for i in range(n)]


P0 = "personalizations.0"
TOO_LONG = "a@" + ".".join(["b" * 60] * 6) + ".com"

RULES = [
    # personalizations
    pytest.param(
        _drop("personalizations"),
        "The personalizations field is required and must have at least one personalization.",
        "personalizations",
        "-Personalizations-Errors",
        id="personalizations-required",
    ),
    pytest.param(
        _set("personalizations", []),
        "You must have at least one personalization.",
        "personalizations",
        "message.personalizations",
        id="personalizations-empty",
    ),
    pytest.param(
        _set("personalizations", [{"to": [{"email": "a@example.com"}]}] * 1001),
        "The personalization block is limited to 1000 personalizations per API request. You have "
        "provided 1001 personalizations. Please consider splitting this into multiple requests "
        "and resending your request.",
        "personalizations",
        "message.personalizations",
        id="personalizations-over-1000",
    ),
    pytest.param(
        _both(_set(f"{P0}.to", _recipients(600)), _set(f"{P0}.cc", _recipients(1001)[600:])),
        "There is a limit of 1000 total recipients (to + cc + bcc) per request.",
        "personalizations",
        "message.personalizations",
        id="recipients-over-1000",
    ),
    pytest.param(
        _drop(f"{P0}.to"),
        "The to array is required for all personalization objects, and must have at least one "
        "email object with a valid email address.",
        f"{P0}.to",
        "message.personalizations.to",
        id="to-required",
    ),
    pytest.param(
        _set(f"{P0}.to", [{"name": "No Email"}]),
        "Each to object must at least have an email address and may also contain a name. " + EG,
        f"{P0}.to.0.email",
        "message.personalizations.to",
        id="to-email-required",
    ),
    pytest.param(
        _set(f"{P0}.to", [{"email": "Alice <alice@example.com>"}]),
        "Does not contain a valid address.",
        f"{P0}.to.0.email",
        "message.personalizations.to",
        id="to-display-name-in-email",
    ),
    pytest.param(
        _set(f"{P0}.to", [{"email": TOO_LONG}]),
        "The To email exceeds the maximum total length of 320 characters",
        f"{P0}.to.0.email",
        "message.personalizations.to",
        id="to-over-320",
    ),
    pytest.param(
        _set(f"{P0}.cc", [{"email": "x@example.com"}, {"email": ""}]),
        "The cc array, when used, must at least have an email parameter with a valid email "
        "address and it may also contain a name parameter. " + EG,
        f"{P0}.cc.1.email",
        "message.personalizations.cc",
        id="cc-email-required",
    ),
    pytest.param(
        _set(f"{P0}.bcc", [{}]),
        "The bcc array, when used, must at least have an email parameter with a valid email "
        "address and it may also contain a name parameter. " + EG,
        f"{P0}.bcc.0.email",
        "message.personalizations.bcc",
        id="bcc-email-required",
    ),
    pytest.param(
        _set(f"{P0}.bcc", [{"email": "not-an-address"}]),
        "Does not contain a valid address.",
        f"{P0}.bcc.0.email",
        "message.personalizations.bcc",
        id="bcc-invalid",
    ),
    pytest.param(
        _set(f"{P0}.cc", [{"email": "RCPT@example.com"}]),
        "Each email address in the personalization block should be unique between to, cc, and "
        "bcc. We found the first duplicate instance of [RCPT@example.com] in the "
        "personalizations.0.cc field.",
        P0,
        "message.personalizations",
        id="recipient-duplicate-across-to-cc",
    ),
    pytest.param(
        _set(f"{P0}.to", [{"email": "a@example.com"}, {"email": "a@example.com"}]),
        "Each email address in the personalization block should be unique between to, cc, and "
        "bcc. We found the first duplicate instance of [a@example.com] in the "
        "personalizations.0.to field.",
        P0,
        "message.personalizations",
        id="recipient-duplicate-within-to",
    ),
    pytest.param(
        _set(f"{P0}.subject", ""),
        "The subject of your email must be a string at least one character in length.",
        f"{P0}.subject",
        "message.personalizations.subject",
        id="personalization-subject-empty",
    ),
    pytest.param(
        _set(f"{P0}.headers", {"X-Count": 1}),
        "All values of the headers object must be strings.",
        f"{P0}.headers",
        "message.personalizations.headers",
        id="personalization-header-not-string",
    ),
    pytest.param(
        _set(f"{P0}.headers", {"X Bad": "1"}),
        "Header keys cannot contain non-ASCII characters or empty spaces.",
        f"{P0}.headers",
        "message.personalizations.headers",
        id="personalization-header-key-space",
    ),
    pytest.param(
        _set(f"{P0}.headers", {"reply-to": "x@example.com"}),
        "Header cannot be one of the reserved keys.",
        f"{P0}.headers",
        "message.personalizations.headers",
        id="personalization-header-reserved",
    ),
    pytest.param(
        _set(f"{P0}.substitutions", {"-n-": 1}),
        "The substitution values must be an object of key/value pairs, where the values are all "
        "strings.",
        f"{P0}.substitutions",
        "message.personalizations.substitutions",
        id="substitutions-not-strings",
    ),
    pytest.param(
        _set(f"{P0}.substitutions", {f"-{i}-": "x" for i in range(10_001)}),
        "You are limited to 10,000 substitutions.",
        f"{P0}.substitutions",
        "message.personalizations.substitutions",
        id="substitutions-over-10000",
    ),
    pytest.param(
        _both(_set("template_id", "d-abc"), _set(f"{P0}.substitutions", {"-n-": "x"})),
        "Substitutions may not be used with dynamic templating",
        f"{P0}.substitutions",
        "message.personalizations.substitutions",
        id="substitutions-with-dynamic-template",
    ),
    pytest.param(
        _set(f"{P0}.custom_args", {"n": 1}),
        "All values of custom arguments object must be strings",
        f"{P0}.custom_args",
        "message.personalizations.custom_args",
        id="custom-args-not-strings",
    ),
    pytest.param(
        _set(f"{P0}.custom_args", {}),
        "custom_args cannot be empty.",
        f"{P0}.custom_args",
        "message.personalizations.custom_args",
        id="custom-args-empty",
    ),
    pytest.param(
        _both(_set("custom_args", {"a": "x" * 6000}), _set(f"{P0}.custom_args", {"b": "y" * 4000})),
        "The combined size of both global and personalization custom arguments may not exceed "
        "10,000 bytes per personalization.",
        f"{P0}.custom_args",
        "message.personalizations.custom_args",
        id="custom-args-merged-over-10000-bytes",
    ),
    pytest.param(
        _set("custom_args", {"a": "x" * 10_000}),
        "The combined size of both global and personalization custom arguments may not exceed "
        "10,000 bytes per personalization.",
        "custom_args",
        "message.personalizations.custom_args",
        id="custom-args-global-over-10000-bytes",
    ),
    pytest.param(
        _set(f"{P0}.send_at", "1700000000"),
        "The send_at parameter is expecting a Unix timestamp as an integer. We will send "
        "immediately if you include a send_at timestamp that is in the past.",
        f"{P0}.send_at",
        "message.personalizations.send_at",
        id="personalization-send-at-not-integer",
    ),
    pytest.param(
        _set(f"{P0}.send_at", int(NOW.timestamp()) + 72 * 3600 + 1),
        "Scheduling more than 72 hours in advance is forbidden.",
        f"{P0}.send_at",
        "message.personalizations.send_at",
        id="personalization-send-at-over-72h",
    ),
    pytest.param(
        _set(f"{P0}.from", {"email": "bad@"}),
        "The from email does not contain a valid address.",
        f"{P0}.from.email",
        "message.from",
        id="personalization-from-invalid",
    ),
    # from, reply_to, reply_to_list
    pytest.param(
        _drop("from"),
        "The from object must be provided for every email send. It is an object that requires "
        "the email parameter, but may also contain a name parameter.  e.g. "
        '{"email" : "example@example.com"}  or '
        '{"email" : "example@example.com", "name" : "Example Recipient"}.',
        "from.email",
        "message.from",
        id="from-required",
    ),
    pytest.param(
        _set("from", {"email": "sender at example.com"}),
        "The from email does not contain a valid address.",
        "from.email",
        "message.from",
        id="from-invalid",
    ),
    pytest.param(
        _set("from", {"email": TOO_LONG}),
        "The From email exceeds the maximum total length of 320 characters",
        "from.email",
        "message.from",
        id="from-over-320",
    ),
    pytest.param(
        _set("reply_to", {"name": "R"}),
        "The reply_to object, when used, must at least have an email parameter with a valid "
        "email address and it may also contain a name parameter. " + EG,
        "reply_to.email",
        "message.reply_to",
        id="reply-to-email-required",
    ),
    pytest.param(
        _set("reply_to", {"email": "nope"}),
        "The reply_to email does not contain a valid address.",
        "reply_to.email",
        "message.reply_to",
        id="reply-to-invalid",
    ),
    pytest.param(
        _both(
            _set("reply_to", {"email": "r@example.com"}),
            _set("reply_to_list", [{"email": "r2@example.com"}]),
        ),
        "reply_to is mutually exclusive with reply_to_list.",
        "reply_to_list",
        "message.reply_to_list",
        id="reply-to-xor-reply-to-list",
    ),
    pytest.param(
        _set("reply_to_list", [{"name": "x"}]),
        "The reply_to_list email parameter is required.",
        "reply_to_list.0.email",
        "message.reply_to_list",
        id="reply-to-list-email-required",
    ),
    pytest.param(
        _set("reply_to_list", [{"email": "x@example.com"}, {"email": "x@"}]),
        "The reply_to_list email does not contain a valid address.",
        "reply_to_list.1.email",
        "message.reply_to_list",
        id="reply-to-list-invalid",
    ),
    pytest.param(
        _set("reply_to_list", [{"email": "x@example.com"}, {"email": "X@example.com"}]),
        "The reply_to_list must be a unique list, and you have included X@example.com more "
        "than once.",
        "reply_to_list.1.email",
        "message.reply_to_list",
        id="reply-to-list-unique",
    ),
    pytest.param(
        _set("reply_to_list", _recipients(1001)),
        "The reply_to_list is limited to 1000 reply_to objects.",
        "reply_to_list",
        "message.reply_to_list",
        id="reply-to-list-over-1000",
    ),
    # subject
    pytest.param(
        _drop("subject"),
        "The subject is required. You can get around this requirement if you use a template "
        "with a subject defined or if every personalization has a subject defined.",
        "subject",
        "message.subject",
        id="subject-required",
    ),
    pytest.param(
        _set("subject", ""),
        "The subject of your email must be a string at least one character in length.",
        "subject",
        "message.subject",
        id="subject-empty",
    ),
    # content
    pytest.param(
        _drop("content"),
        "Unless a valid template_id is provided, the content parameter is required. There must "
        "be at least one defined content block. We typically suggest both text/plain and "
        "text/html blocks are included, but only one block is required.",
        "content",
        "message.content",
        id="content-required",
    ),
    pytest.param(
        _set("content", [{"type": "text/plain", "value": ""}]),
        "The content value must be a string at least one character in length.",
        "content.0.value",
        "message.content.value",
        id="content-value-empty",
    ),
    pytest.param(
        _set("content", [{"type": "text/plain"}]),
        "A content value is required, this is the content of the email you are sending.",
        "content.0.value",
        "message.content.value",
        id="content-value-required",
    ),
    pytest.param(
        _set("content", [{"value": "x"}]),
        "A content type is required, this tells email clients how to display the email.",
        "content.0.type",
        "message.content.type",
        id="content-type-required",
    ),
    pytest.param(
        _set("content", [{"type": "", "value": "x"}]),
        "Your content type must be a string with length of at least one character.",
        "content.0.type",
        "message.content.type",
        id="content-type-empty",
    ),
    pytest.param(
        _set("content", [{"type": "text/plain; charset=utf-8", "value": "x"}]),
        "Cannot contain ';', or CRLF characters.",
        "content.0.type",
        "message.content.type",
        id="content-type-with-parameters",
    ),
    pytest.param(
        _set(
            "content", [{"type": "text/html", "value": "h"}, {"type": "text/plain", "value": "t"}]
        ),
        "Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in "
        "your email: text/plain needs to be first, followed by text/html, followed by any other "
        "content.",
        "content",
        "message.content.value",
        id="content-text-plain-first",
    ),
    pytest.param(
        _set(
            "content",
            [{"type": "text/calendar", "value": "c"}, {"type": "text/html", "value": "h"}],
        ),
        "Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in "
        "your email: text/plain needs to be first, followed by text/html, followed by any other "
        "content.",
        "content",
        "message.content.value",
        id="content-other-types-after-html",
    ),
    # attachments
    pytest.param(
        _set("attachments", [{"content": "not base64!", "filename": "a.txt"}]),
        "The attachment content must be base64 encoded.",
        "attachments.0.content",
        "message.attachments.content",
        id="attachment-content-not-base64",
    ),
    pytest.param(
        _set(
            "attachments",
            [{"content": "aGVsbG8=", "filename": "a"}, {"content": "", "filename": "b"}],
        ),
        "The attachment content must be a string at least one character in length.",
        "attachments.1.content",
        "message.attachments.content",
        id="attachment-content-empty",
    ),
    pytest.param(
        _set("attachments", [{"content": "aGVsbG8="}]),
        "filename is required.",
        "attachments.0.filename",
        "message.attachments.filename",
        id="attachment-filename-required",
    ),
    pytest.param(
        _set("attachments", [{"content": "aGVsbG8=", "filename": 5}]),
        "The filename of your attachment must be a string.",
        "attachments.0.filename",
        "message.attachments.filename",
        id="attachment-filename-not-string",
    ),
    pytest.param(
        _set("attachments", [{"content": "aGVsbG8=", "filename": "a\r\n.txt"}]),
        "The filename of your attachment cannot contain CRLF characters.",
        "attachments.0.filename",
        "message.attachments.filename",
        id="attachment-filename-crlf",
    ),
    pytest.param(
        _set("attachments", [{"content": "aGVsbG8=", "filename": "a", "type": ""}]),
        "The attachment type must be a string and at least one character in length.",
        "attachments.0.type",
        "message.attachments.type",
        id="attachment-type-empty",
    ),
    pytest.param(
        _set("attachments", [{"content": "aGVsbG8=", "filename": "a", "type": "text/plain;x=1"}]),
        "The type cannot contain ';', or CRLF characters.",
        "attachments.0.type",
        "message.attachments.type",
        id="attachment-type-semicolon",
    ),
    pytest.param(
        _set("attachments", [{"content": "aGVsbG8=", "filename": "a", "disposition": "embed"}]),
        'The disposition of your attachment can be either "inline" or "attachment". '
        "You provided embed.",
        "attachments.0.disposition",
        "message.attachments.disposition",
        id="attachment-disposition",
    ),
    pytest.param(
        _set("attachments", [{"content": "aGVsbG8=", "filename": "a", "disposition": "inline"}]),
        "The content_id parameter is required if disposition = 'inline'.",
        "attachments.0.content_id",
        "message.attachments.content_id",
        id="attachment-inline-needs-content-id",
    ),
    pytest.param(
        _set("attachments", [{"content": "aGVsbG8=", "filename": "a", "content_id": 12}]),
        "The content ID of your attachment must be a string. You provided 12.",
        "attachments.0.content_id",
        "message.attachments.content_id",
        id="attachment-content-id-not-string",
    ),
    pytest.param(
        _set("attachments", [{"content": "aGVsbG8=", "filename": "a", "content_id": "a\nb"}]),
        "The content ID of your attachment cannot contain CRLF characters.",
        "attachments.0.content_id",
        "message.attachments.content_id",
        id="attachment-content-id-crlf",
    ),
    # the rest of the top level
    pytest.param(
        _set("template_id", 42),
        "The template ID must be a string, you provided 42.",
        "template_id",
        "message.template_id",
        id="template-id-not-string",
    ),
    pytest.param(
        _set("sections", {"%s%": 1}),
        "The section values must be strings.",
        "sections",
        "message.sections",
        id="sections-not-strings",
    ),
    pytest.param(
        _set("headers", {"X-N": 1}),
        "The header values must be strings.",
        "headers",
        "message.headers",
        id="header-not-string",
    ),
    pytest.param(
        _set("headers", {"X-Ünicode": "1"}),
        "Header keys cannot contain non-ASCII characters and empty spaces.",
        "headers",
        "message.headers",
        id="header-key-non-ascii",
    ),
    *[
        pytest.param(
            _set("headers", {name: "x"}),
            "Header can not be one of the reserved keys.",
            "headers",
            "message.headers",
            id=f"header-reserved-{name}",
        )
        for name in (
            "x-sg-id",
            "X-SG-EID",
            "Received",
            "DKIM-Signature",
            "content-type",
            "Content-Transfer-Encoding",
            "To",
            "from",
            "SUBJECT",
            "Reply-To",
            "cc",
            "Bcc",
        )
    ],
    pytest.param(
        _set("categories", [f"c{i}" for i in range(11)]),
        "There is a limit of 10 categories for each email that is sent. You provided 11 "
        "categories.",
        "categories",
        "message.categories",
        id="categories-over-10",
    ),
    pytest.param(
        _set("categories", ["a", 1]),
        "Categories must be an array of strings.",
        "categories",
        "message.categories",
        id="categories-not-strings",
    ),
    pytest.param(
        _set("categories", ["x" * 256]),
        f"Each category must not be longer than 255 characters. {'x' * 256} exceeds this limit",
        "categories",
        "message.categories",
        id="category-over-255",
    ),
    pytest.param(
        _set("categories", ["a", "b", "a"]),
        "The categories must be a unique list, and you have included a more than once.",
        "categories",
        "message.categories",
        id="categories-unique",
    ),
    pytest.param(
        _set("categories", ["café"]),
        "Categories can not contain non-ASCII characters.",
        "categories",
        "message.categories",
        id="category-non-ascii",
    ),
    pytest.param(
        _set("send_at", 1.5),
        "The send_at parameter is expecting a Unix timestamp as an integer. We will send "
        "immediately if you include a send_at timestamp that is in the past.",
        "send_at",
        "message.send_at",
        id="send-at-not-integer",
    ),
    pytest.param(
        _set("send_at", int((NOW + timedelta(hours=73)).timestamp())),
        "Scheduling more than 72 hours in advance is forbidden.",
        "send_at",
        "message.send_at",
        id="send-at-over-72h",
    ),
    pytest.param(
        _set("batch_id", 7),
        "The batch_id must be a string.",
        "batch_id",
        "message.batch_id",
        id="batch-id-not-string",
    ),
    pytest.param(
        _set("asm", {"group_id": "7"}),
        "The ASM group ID must be an integer.",
        "asm.group_id",
        "message.asm.group_id",
        id="asm-group-id-not-integer",
    ),
    pytest.param(
        _set("asm", {"group_id": 1, "groups_to_display": [1, "2"]}),
        "The ASM Group IDs to display must be an array of integers.",
        "asm.groups_to_display",
        "message.asm.groups_to_display",
        id="asm-groups-to-display-not-integers",
    ),
    pytest.param(
        _set("asm", {"group_id": 1, "groups_to_display": list(range(26))}),
        "There is a limit of 25 unsubscribe groups that can be displayed to a user at a time.",
        "asm.groups_to_display",
        "message.asm.groups_to_display",
        id="asm-groups-to-display-over-25",
    ),
    pytest.param(
        _set("ip_pool_name", 5),
        "The name of your IP pool must be a string.",
        "ip_pool_name",
        "message.ip_pool_name",
        id="ip-pool-name-not-string",
    ),
    pytest.param(
        _set("ip_pool_name", "p"),
        "The IP Pool name must be a valid pool name for your account. You provided p.",
        "ip_pool_name",
        "message.ip_pool_name",
        id="ip-pool-name-under-2",
    ),
    pytest.param(
        _set("ip_pool_name", "p" * 65),
        f"The IP Pool name must be a valid pool name for your account. You provided {'p' * 65}.",
        "ip_pool_name",
        "message.ip_pool_name",
        id="ip-pool-name-over-64",
    ),
    # mail_settings and tracking_settings
    *[
        pytest.param(
            _set(f"{group}.{setting}", {"enable": "true"}),
            message,
            f"{group}.{setting}.enable",
            f"message.{group}.{setting}.enable",
            id=f"{setting}-enable-not-boolean",
        )
        for group, setting, message in [
            (
                "mail_settings",
                "sandbox_mode",
                "The sandbox mode enable param should be a boolean value.",
            ),
            (
                "mail_settings",
                "bypass_list_management",
                "The bypass list management enable param should be a boolean value.",
            ),
            (
                "mail_settings",
                "bypass_spam_management",
                "The bypass spam management enable param should be a boolean value.",
            ),
            (
                "mail_settings",
                "bypass_bounce_management",
                "The bypass bounce management enable param should be a boolean value.",
            ),
            (
                "mail_settings",
                "bypass_unsubscribe_management",
                "The bypass unsubscribe management enable param should be a boolean value.",
            ),
            ("mail_settings", "footer", "The footer enable param should be a boolean value."),
            ("mail_settings", "bcc", "The bcc enable param should be a boolean value."),
            (
                "mail_settings",
                "spam_check",
                "The spam check enable param should be a boolean value.",
            ),
            (
                "tracking_settings",
                "click_tracking",
                "The click tracking enable param should be a boolean value.",
            ),
            (
                "tracking_settings",
                "open_tracking",
                "The open tracking enable param should be a boolean value.",
            ),
            (
                "tracking_settings",
                "subscription_tracking",
                "The subscription tracking enable param should be a boolean value.",
            ),
            (
                "tracking_settings",
                "ganalytics",
                "The Google Analytics enable param must be a boolean value.",
            ),
        ]
    ],
    *[
        pytest.param(
            _set(path, 1),
            message,
            path,
            f"message.{path}",
            id=f"{path}-not-string",
        )
        for path, message in [
            (
                "mail_settings.footer.text",
                "The text/plain version of your footer should be a string.",
            ),
            (
                "mail_settings.footer.html",
                "The text/html version of your footer should be a string.",
            ),
            (
                "tracking_settings.open_tracking.substitution_tag",
                "The open tracking substitution tag must be a string.",
            ),
            (
                "tracking_settings.subscription_tracking.text",
                "The subscription tracking unsubscribe content for text/plain messages must be "
                "a string.",
            ),
            (
                "tracking_settings.subscription_tracking.html",
                "The subscription tracking unsubscribe content for text/html messages must be "
                "a string.",
            ),
            (
                "tracking_settings.subscription_tracking.substitution_tag",
                "The subscription tracking substitution tag must be a string value.",
            ),
            (
                "tracking_settings.ganalytics.utm_source",
                "The Google Analytics utm_source must be a string value.",
            ),
            (
                "tracking_settings.ganalytics.utm_medium",
                "The Google Analytics utm_medium must be a string value.",
            ),
            (
                "tracking_settings.ganalytics.utm_term",
                "The Google Analytics utm_term must be a string value.",
            ),
            (
                "tracking_settings.ganalytics.utm_content",
                "The Google Analytics utm_content must be a string value.",
            ),
            (
                "tracking_settings.ganalytics.utm_campaign",
                "The Google Analytics utm_campaign must be a string value.",
            ),
            ("mail_settings.spam_check.post_to_url", "The spam check url must be a string."),
        ]
    ],
    pytest.param(
        _set("tracking_settings.click_tracking", {"enable": True, "enable_text": "no"}),
        "The click tracking enable text must be a boolean value.",
        "tracking_settings.click_tracking.enable_text",
        "message.tracking_settings.click_tracking.enable_text",
        id="click-tracking-enable-text-not-boolean",
    ),
    pytest.param(
        _set("mail_settings.bcc", {"enable": True}),
        "You must include a recipient object when using the bcc mail setting.",
        "mail_settings.bcc.email",
        "message.mail_settings.bcc.email",
        id="bcc-setting-needs-email",
    ),
    pytest.param(
        _set("mail_settings.bcc", {"enable": True, "email": "nope"}),
        "The bcc email recipient object must at least have an email address and may also "
        "contain a name. " + EG,
        "mail_settings.bcc.email",
        "message.mail_settings.bcc.email",
        id="bcc-setting-invalid-email",
    ),
    pytest.param(
        _set("mail_settings.spam_check", {"enable": True, "threshold": 11}),
        "The spam check threshold is between 1 and 10, with the lower numbers being the most "
        "strict filtering.",
        "mail_settings.spam_check.threshold",
        "message.mail_settings.spam_check.threshold",
        id="spam-check-threshold-1-to-10",
    ),
    pytest.param(
        _set("mail_settings.spam_check", {"enable": True, "post_to_url": "ftp://x.example"}),
        "The `post_to_url` parameter must start with `http://` or `https://`.",
        "mail_settings.spam_check.post_to_url",
        "message.mail_settings.spam_check.post_to_url",
        id="spam-check-url-http",
    ),
]


@pytest.mark.parametrize(("mutate", "message", "field", "anchor"), RULES)
def test_rule_answers_with_sendgrid_message_field_and_help(
    mutate: Mutation, message: str, field: str, anchor: str
) -> None:
    body = minimal()
    mutate(body)

    assert errors_of(body) == [(message, field, help_for(anchor))]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="body-not-object"),
        pytest.param("{}", id="body-a-string"),
        pytest.param({**minimal(), "personalizations": {"to": []}}, id="personalizations-object"),
        pytest.param({**minimal(), "from": "sender@example.com"}, id="from-a-string"),
        pytest.param({**minimal(), "content": {"type": "text/plain"}}, id="content-object"),
        pytest.param({**minimal(), "subject": 5}, id="subject-number"),
        pytest.param({**minimal(), "mail_settings": []}, id="mail-settings-array"),
    ],
)
def test_wrong_json_shape_is_one_bad_request_with_null_field_and_help(body: object) -> None:
    assert errors_of(body) == [("Bad Request", None, None)]


def test_to_given_as_strings_is_bad_request() -> None:
    body = minimal()
    body["personalizations"][0]["to"] = ["rcpt@example.com"]

    assert errors_of(body) == [("Bad Request", None, None)]


def test_all_errors_of_a_body_are_reported_together_like_sendgrid() -> None:
    # The body and answer of a real SendGrid response (sendgrid-ruby#438).
    assert [(f, h) for _, f, h in errors_of({"subject": "x"})] == [
        ("from.email", help_for("message.from")),
        ("personalizations", help_for("-Personalizations-Errors")),
        ("content", help_for("message.content")),
    ]


def test_substitution_errors_are_reported_per_personalization() -> None:
    body = minimal()
    body["template_id"] = "d-abc"
    body["personalizations"] = [
        {"to": [{"email": f"r{i}@example.com"}], "substitutions": {"-n-": "x"}} for i in range(2)
    ]

    assert [f for _, f, _ in errors_of(body)] == [
        "personalizations.0.substitutions",
        "personalizations.1.substitutions",
    ]


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_both(_drop("subject"), _set("template_id", "legacy-1")), id="template"),
        pytest.param(_both(_drop("subject"), _set(f"{P0}.subject", "own")), id="all-personalized"),
        pytest.param(
            _both(_drop("content"), _set("template_id", "d-1")), id="content-via-template"
        ),
        pytest.param(_set(f"{P0}.dynamic_template_data", {"a": 1}), id="template-data-no-template"),
        pytest.param(_set("reply_to_list", []), id="empty-reply-to-list"),
        pytest.param(
            _set(
                "content",
                [
                    {"type": "text/plain", "value": "t"},
                    {"type": "text/html", "value": "h"},
                    {"type": "text/calendar", "value": "c"},
                ],
            ),
            id="plain-html-other",
        ),
        pytest.param(
            _set(
                "content",
                [{"type": "text/html", "value": "h"}, {"type": "text/x-amp-html", "value": "a"}],
            ),
            id="html-then-amp",
        ),
        pytest.param(
            _set("attachments", [{"content": "aGVs\r\nbG8=", "filename": "a"}]), id="wrapped-base64"
        ),
        pytest.param(
            _set("personalizations", [{"to": [{"email": "a@example.com"}]}] * 2),
            id="same-rcpt-two-personalizations",
        ),
        pytest.param(
            _set("mail_settings.spam_check", {"enable": True}), id="spam-check-without-options"
        ),
        pytest.param(_set("unknown_future_field", {"x": 1}), id="unknown-top-level-field"),
        pytest.param(_set("send_at", int(NOW.timestamp()) + 72 * 3600), id="send-at-exactly-72h"),
        pytest.param(_set("ip_pool_name", "p" * 64), id="ip-pool-64-chars"),
        pytest.param(_set("categories", [f"c{i}" for i in range(10)]), id="ten-categories"),
        pytest.param(_set(f"{P0}.to", _recipients(1000)), id="thousand-recipients"),
    ],
)
def test_accepted_like_sendgrid(mutate: Mutation) -> None:
    body = minimal()
    mutate(body)

    parse_send_request(copy.deepcopy(body), now=NOW)
