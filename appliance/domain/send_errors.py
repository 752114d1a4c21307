"""Why a mail/send body was refused, in SendGrid's words.

Every message here is SendGrid's own: from its published Mail Send error table
(the ``sendgrid/docs`` source of ``API_Reference/Web_API_v3/Mail/errors.md``,
HTML tags removed), from ``shared/reference/sendgrid-compat.md`` §2.2, or from
response bodies real SendGrid servers sent (quoted in client issues). Messages
marked GUESS follow the pattern of their neighbours where no source gives one.

``help`` is the URL real responses carry: the old errors page plus the anchor of
the table the message belongs to (``#message.personalizations.to``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

HELP_BASE = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"

# The e.g. tail SendGrid appends to its "must have an email" messages.
_EG = (
    'e.g. {"email": "example@example.com"} or '
    '{"email": "example@example.com", "name": "Example Recipient"}'
)

BAD_REQUEST = "Bad Request"  # compat §1: a body of the wrong JSON shape, field and help null

# personalizations
PERSONALIZATIONS_REQUIRED = (  # real response (sendgrid-ruby#438), help #-Personalizations-Errors
    "The personalizations field is required and must have at least one personalization."
)
PERSONALIZATIONS_EMPTY = "You must have at least one personalization."
PERSONALIZATIONS_TOO_MANY = (
    "The personalization block is limited to 1000 personalizations per API request. "
    "You have provided {n} personalizations. Please consider splitting this into multiple "
    "requests and resending your request."
)
RECIPIENTS_TOO_MANY = "There is a limit of 1000 total recipients (to + cc + bcc) per request."
RECIPIENT_DUPLICATE = (  # current wording, support article; field personalizations.N
    "Each email address in the personalization block should be unique between to, cc, and bcc. "
    "We found the first duplicate instance of [{email}] in the {field} field."
)
TO_REQUIRED = (  # real response (sendgrid-ruby#507, 2025); docs: "The to parameter is required …"
    "The to array is required for all personalization objects, and must have at least one "
    "email object with a valid email address."
)
TO_EMAIL_REQUIRED = (
    "Each to object must at least have an email address and may also contain a name. " + _EG
)
CC_EMAIL_REQUIRED = (
    "The cc array, when used, must at least have an email parameter with a valid email "
    "address and it may also contain a name parameter. " + _EG
)
BCC_EMAIL_REQUIRED = (
    "The bcc array, when used, must at least have an email parameter with a valid email "
    "address and it may also contain a name parameter. " + _EG
)
RECIPIENT_INVALID = "Does not contain a valid address."  # real response, field …to.0.email
EMAIL_TOO_LONG = "The {label} email exceeds the maximum total length of 320 characters"
SUBJECT_EMPTY = "The subject of your email must be a string at least one character in length."
SUBJECT_REQUIRED = (
    "The subject is required. You can get around this requirement if you use a template with "
    "a subject defined or if every personalization has a subject defined."
)
SUBSTITUTIONS_NOT_STRINGS = (
    "The substitution values must be an object of key/value pairs, where the values are all "
    "strings."
)
SUBSTITUTIONS_TOO_MANY = "You are limited to 10,000 substitutions."
SUBSTITUTIONS_WITH_DYNAMIC = "Substitutions may not be used with dynamic templating"
CUSTOM_ARGS_NOT_STRINGS = "All values of custom arguments object must be strings"
CUSTOM_ARGS_EMPTY = "custom_args cannot be empty."
CUSTOM_ARGS_TOO_BIG = (
    "The combined size of both global and personalization custom arguments may not exceed "
    "10,000 bytes per personalization."
)
SEND_AT_NOT_INTEGER = (
    "The send_at parameter is expecting a Unix timestamp as an integer. We will send "
    "immediately if you include a send_at timestamp that is in the past."
)
SEND_AT_TOO_FAR = "Scheduling more than 72 hours in advance is forbidden."
PERSONALIZATION_HEADER_NOT_STRING = "All values of the headers object must be strings."
PERSONALIZATION_HEADER_KEY = "Header keys cannot contain non-ASCII characters or empty spaces."
PERSONALIZATION_HEADER_RESERVED = "Header cannot be one of the reserved keys."

# CR, LF or NUL in a value that becomes a header (GUESS: SendGrid publishes no wording;
# these follow the attachment filename rule). They would start a new header line.
NAME_LINE_BREAK = "The {role} name cannot contain CRLF or NUL characters."
SUBJECT_LINE_BREAK = "The subject of your email cannot contain CRLF or NUL characters."
HEADER_VALUE_LINE_BREAK = "Header values cannot contain CRLF or NUL characters."

# from / reply_to
FROM_REQUIRED = (  # real response, compat §1 (note SendGrid's double spaces)
    "The from object must be provided for every email send. It is an object that requires "
    "the email parameter, but may also contain a name parameter.  "
    'e.g. {"email" : "example@example.com"}  or '
    '{"email" : "example@example.com", "name" : "Example Recipient"}.'
)
FROM_INVALID = "The from email does not contain a valid address."  # real response
REPLY_TO_EMAIL_REQUIRED = (
    "The reply_to object, when used, must at least have an email parameter with a valid "
    "email address and it may also contain a name parameter. " + _EG
)
REPLY_TO_INVALID = "The reply_to email does not contain a valid address."  # GUESS, like from
REPLY_TO_EXCLUSIVE = "reply_to is mutually exclusive with reply_to_list."
REPLY_TO_LIST_EMAIL_REQUIRED = "The reply_to_list email parameter is required."
REPLY_TO_LIST_INVALID = "The reply_to_list email does not contain a valid address."
REPLY_TO_LIST_TOO_LONG = (
    "The reply_to_list email exceeds the maximum total length of 320 characters."
)
REPLY_TO_LIST_TOO_MANY = "The reply_to_list is limited to 1000 reply_to objects."  # GUESS
REPLY_TO_LIST_DUPLICATE = (  # GUESS, worded like the categories rule
    "The reply_to_list must be a unique list, and you have included {email} more than once."
)

# content
CONTENT_REQUIRED = (  # real response (sendgrid-ruby#438) and compat §2.2
    "Unless a valid template_id is provided, the content parameter is required. There must be "
    "at least one defined content block. We typically suggest both text/plain and text/html "
    "blocks are included, but only one block is required."
)
CONTENT_TYPE_REQUIRED = (
    "A content type is required, this tells email clients how to display the email."
)
CONTENT_TYPE_EMPTY = "Your content type must be a string with length of at least one character."
CONTENT_TYPE_CRLF = "Cannot contain ';', or CRLF characters."
CONTENT_VALUE_REQUIRED = (
    "A content value is required, this is the content of the email you are sending."
)
CONTENT_VALUE_EMPTY = "The content value must be a string at least one character in length."
CONTENT_ORDER = (
    "Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in your "
    "email: text/plain needs to be first, followed by text/html, followed by any other content."
)

# attachments
ATTACHMENT_CONTENT_EMPTY = (
    "The attachment content must be a string at least one character in length."
)
ATTACHMENT_CONTENT_BASE64 = "The attachment content must be base64 encoded."
ATTACHMENT_FILENAME_REQUIRED = "filename is required."
ATTACHMENT_FILENAME_NOT_STRING = "The filename of your attachment must be a string."
ATTACHMENT_FILENAME_CRLF = "The filename of your attachment cannot contain CRLF characters."
ATTACHMENT_TYPE_EMPTY = "The attachment type must be a string and at least one character in length."
ATTACHMENT_TYPE_CRLF = "The type cannot contain ';', or CRLF characters."
ATTACHMENT_DISPOSITION = (
    'The disposition of your attachment can be either "inline" or "attachment". '
    "You provided {value}."
)
ATTACHMENT_CONTENT_ID_NOT_STRING = (
    "The content ID of your attachment must be a string. You provided {value}."
)
ATTACHMENT_CONTENT_ID_CRLF = "The content ID of your attachment cannot contain CRLF characters."
ATTACHMENT_CONTENT_ID_REQUIRED = (  # real response, field attachments.N.content_id
    "The content_id parameter is required if disposition = 'inline'."
)

# the rest of the top level
TEMPLATE_ID_NOT_STRING = "The template ID must be a string, you provided {value}."
SECTIONS_NOT_STRINGS = "The section values must be strings."
HEADER_NOT_STRING = "The header values must be strings."
HEADER_KEY = "Header keys cannot contain non-ASCII characters and empty spaces."
HEADER_RESERVED = "Header can not be one of the reserved keys."
CATEGORIES_TOO_MANY = (
    "There is a limit of 10 categories for each email that is sent. You provided {n} categories."
)
CATEGORIES_NOT_STRINGS = "Categories must be an array of strings."
CATEGORY_TOO_LONG = (
    "Each category must not be longer than 255 characters. {value} exceeds this limit"
)
CATEGORY_DUPLICATE = (
    "The categories must be a unique list, and you have included {value} more than once."
)
CATEGORY_NON_ASCII = "Categories can not contain non-ASCII characters."
BATCH_ID_NOT_STRING = "The batch_id must be a string."
ASM_GROUP_ID = "The ASM group ID must be an integer."
ASM_GROUPS_TO_DISPLAY = "The ASM Group IDs to display must be an array of integers."
ASM_GROUPS_TOO_MANY = (
    "There is a limit of 25 unsubscribe groups that can be displayed to a user at a time."
)
IP_POOL_NOT_STRING = "The name of your IP pool must be a string."
IP_POOL_INVALID = (  # the pool-lookup message; a 1- or 65-char name can name no pool
    "The IP Pool name must be a valid pool name for your account. You provided {value}."
)

# mail_settings: "<setting> enable param should be a boolean value." and the rest
SETTING_ENABLE_NOT_BOOL = {
    "bcc": "The bcc enable param should be a boolean value.",
    "bypass_list_management": "The bypass list management enable param should be a boolean value.",
    # GUESS for the three newer bypass settings: no published message, same pattern.
    "bypass_spam_management": "The bypass spam management enable param should be a boolean value.",
    "bypass_bounce_management": (
        "The bypass bounce management enable param should be a boolean value."
    ),
    "bypass_unsubscribe_management": (
        "The bypass unsubscribe management enable param should be a boolean value."
    ),
    "footer": "The footer enable param should be a boolean value.",
    "sandbox_mode": "The sandbox mode enable param should be a boolean value.",
    "spam_check": "The spam check enable param should be a boolean value.",
    "click_tracking": "The click tracking enable param should be a boolean value.",
    "open_tracking": "The open tracking enable param should be a boolean value.",
    "subscription_tracking": "The subscription tracking enable param should be a boolean value.",
    "ganalytics": "The Google Analytics enable param must be a boolean value.",
}
BCC_EMAIL_INVALID = (
    "The bcc email recipient object must at least have an email address and may also contain "
    "a name. " + _EG
)
BCC_EMAIL_MISSING = "You must include a recipient object when using the bcc mail setting."
SPAM_CHECK_URL_NOT_STRING = "The spam check url must be a string."
SPAM_CHECK_URL_SCHEME = "The `post_to_url` parameter must start with `http://` or `https://`."
SPAM_CHECK_THRESHOLD = (
    "The spam check threshold is between 1 and 10, with the lower numbers being the most "
    "strict filtering."
)
# Messages for the string-valued settings, by dotted path under the body.
SETTING_NOT_STRING = {
    "mail_settings.footer.html": "The text/html version of your footer should be a string.",
    "mail_settings.footer.text": "The text/plain version of your footer should be a string.",
    "tracking_settings.open_tracking.substitution_tag": (
        "The open tracking substitution tag must be a string."
    ),
    "tracking_settings.subscription_tracking.html": (
        "The subscription tracking unsubscribe content for text/html messages must be a string."
    ),
    "tracking_settings.subscription_tracking.text": (
        "The subscription tracking unsubscribe content for text/plain messages must be a string."
    ),
    "tracking_settings.subscription_tracking.substitution_tag": (
        "The subscription tracking substitution tag must be a string value."
    ),
    **{
        f"tracking_settings.ganalytics.{utm}": f"The Google Analytics {utm} must be a string value."
        for utm in ("utm_source", "utm_medium", "utm_term", "utm_content", "utm_campaign")
    },
}
CLICK_TRACKING_ENABLE_TEXT = "The click tracking enable text must be a boolean value."


def help_url(anchor: str) -> str:
    """The help link SendGrid sends with an error of the table ``anchor``."""
    return f"{HELP_BASE}#{anchor}"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One entry of SendGrid's ``{"errors": [...]}`` list."""

    message: str
    field: str | None
    help: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"message": self.message, "field": self.field, "help": self.help}


class SendValidationError(ValueError):
    """The client's mail/send body breaks SendGrid's rules: answer 400 with ``to_json()``.

    Like SendGrid, it carries every rule the body breaks, in body order, except
    that a body of the wrong JSON shape gets the single ``Bad Request`` entry.
    """

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors = tuple(errors)
        if not self.errors:
            raise ValueError("SendValidationError needs at least one FieldError")
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))

    def to_json(self) -> dict[str, list[dict[str, str | None]]]:
        return {"errors": [e.to_json() for e in self.errors]}


class BadShapeError(Exception):
    """A value of the wrong JSON type where SendGrid has no message of its own.

    Caught by parse_send_request, which answers with the single ``Bad Request``.
    """


class RuleChecker:
    """Collects FieldErrors while a body is walked; shared by the validator parts."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def error(self, message: str, field: str | None, anchor: str) -> None:
        self.errors.append(FieldError(message, field, help_url(anchor)))


def json_object(value: object) -> dict[str, object] | None:
    """A JSON object, or None for absent/null; any other type is a bad shape."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadShapeError
    return value


def json_array(value: object) -> list[object] | None:
    """A JSON array, or None for absent/null; any other type is a bad shape."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadShapeError
    return value


def json_string(value: object) -> str | None:
    """A JSON string, or None for absent/null; any other type is a bad shape."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadShapeError
    return value


def breaks_header_line(value: str) -> bool:
    """True when ``value`` holds CR, LF or NUL: in a header it would start a new line."""
    return "\r" in value or "\n" in value or "\0" in value


def shown(value: object) -> str:
    """A client's value as SendGrid quotes it in "You provided …"."""
    return value if isinstance(value, str) else json.dumps(value)
