"""Rendering message content: dynamic (Handlebars) templates and legacy substitutions.

Dynamic templates (``template_id`` starting ``d-``) are rendered with
``personalizations[].dynamic_template_data`` under Handlebars semantics as
SendGrid documents them: missing values render as nothing, ``{{ }}`` escapes
HTML (in every part, the subject and plain text included, as SendGrid does:
use ``{{{ }}}`` for raw text), ``{{#if}}`` treats ``0``, ``""``, ``null``,
``false`` and ``[]`` as false. The syntax lives in
``appliance.domain.handlebars``; this module evaluates it.

A template is parsed once and the parsed tree is cached (``compile_template``),
because one template version renders thousands of messages. A template that
cannot be parsed raises ``TemplateError`` naming the part, line and column;
its text is what a message's ``error_message`` shows.

Legacy templates use ``substitutions`` (literal tags such as ``-name-``) and
``sections``: see ``apply_substitutions``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum

from appliance.domain.handlebars import (
    Block,
    Call,
    Expr,
    HandlebarsSyntaxError,
    Literal,
    Mustache,
    Node,
    PathExpr,
    SubExpr,
    Text,
    parse,
)

TEMPLATE_CACHE_SIZE = 512  # parsed templates kept; a template version is one entry per part


class TemplatePart(Enum):
    """Which part of a template version a source text is."""

    SUBJECT = "subject"
    HTML = "html"
    TEXT = "text"
    AMP_HTML = "amp_html"


class TemplateError(ValueError):
    """A template that cannot be rendered; blame: the template's author."""

    def __init__(self, part: TemplatePart, reason: str, line: int, column: int) -> None:
        super().__init__(
            f"{part.value} template, line {line}, column {column}: {reason}"
            " (fix the template version and retry the message)"
        )
        self.part = part
        self.reason = reason
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A parsed template, safe to share and to render any number of times."""

    nodes: tuple[Node, ...]

    def render(self, data: object) -> str:
        out: list[str] = []
        _render(self.nodes, _Scope((data,), {"root": data}), out)
        return "".join(out)


@functools.lru_cache(maxsize=TEMPLATE_CACHE_SIZE)
def _parse_cached(source: str) -> CompiledTemplate:
    return CompiledTemplate(parse(source))


def compile_template(source: str, part: TemplatePart) -> CompiledTemplate:
    """Parse ``source`` (cached); raise ``TemplateError`` if it is malformed."""
    try:
        return _parse_cached(source)
    except HandlebarsSyntaxError as exc:
        raise TemplateError(part, exc.reason, exc.line, exc.column) from None


def render_template(source: str, data: object, part: TemplatePart) -> str:
    """Render one part of a dynamic template with ``dynamic_template_data``."""
    return compile_template(source, part).render(data)


@dataclass(frozen=True, slots=True)
class RenderedContent:
    subject: str | None
    html: str | None
    text: str | None
    amp_html: str | None = None


def render_dynamic_template(
    data: object,
    *,
    subject: str | None = None,
    html: str | None = None,
    text: str | None = None,
    amp_html: str | None = None,
) -> RenderedContent:
    """Render every part a template version has (``None`` parts stay ``None``)."""

    def one(source: str | None, part: TemplatePart) -> str | None:
        return None if source is None else render_template(source, data, part)

    return RenderedContent(
        subject=one(subject, TemplatePart.SUBJECT),
        html=one(html, TemplatePart.HTML),
        text=one(text, TemplatePart.TEXT),
        amp_html=one(amp_html, TemplatePart.AMP_HTML),
    )


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class _Scope:
    contexts: tuple[object, ...]  # innermost last; "../" walks back
    data: Mapping[str, object]  # @index, @key, @first, @last, @root

    def push(self, context: object, **data: object) -> _Scope:
        merged = {**self.data, **data} if data else self.data
        return _Scope((*self.contexts, context), merged)


def _render(nodes: Sequence[Node], scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            out.append(node.value)
        elif isinstance(node, Mustache):
            value = _call(node.call, scope)
            text = to_display(value)
            out.append(escape_html(text) if node.escape else text)
        else:
            _render_block(node, scope, out)


def _render_block(block: Block, scope: _Scope, out: list[str]) -> None:
    call = block.call
    name = call.helper
    if name is None:  # a section: {{#value}}…{{/value}}
        value = _resolve(call.head, scope)
        if value is True:
            _render(block.program, scope, out)
        elif isinstance(value, list | tuple):
            _each(value, block, scope, out)
        elif is_truthy(value):
            _render(block.program, scope.push(value), out)
        else:
            _render(block.inverse, scope, out)
        return
    args = [_eval(p, scope) for p in call.params]
    if name == "each":
        _each(args[0], block, scope, out)
    elif name == "with":
        if _is_empty(args[0]):
            _render(block.inverse, scope, out)
        else:
            _render(block.program, scope.push(args[0]), out)
    else:
        if name == "if":
            test = is_truthy(args[0])
        elif name == "unless":
            test = not is_truthy(args[0])
        else:
            test = is_truthy(_CALLS[name](args, {}))
        _render(block.program if test else block.inverse, scope, out)


def _each(value: object, block: Block, scope: _Scope, out: list[str]) -> None:
    if isinstance(value, Mapping):
        items: list[tuple[object, object]] = list(value.items())
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    else:
        items = []
    if not items:
        _render(block.inverse, scope, out)
        return
    last = len(items) - 1
    keyed = isinstance(value, Mapping)
    for index, (key, item) in enumerate(items):
        extra: dict[str, object] = {"index": index, "first": index == 0, "last": index == last}
        if keyed:
            extra["key"] = key
        _render(block.program, scope.push(item, **extra), out)


def _call(call: Call, scope: _Scope) -> object:
    if call.helper is None:
        return _resolve(call.head, scope)
    args = [_eval(p, scope) for p in call.params]
    hash_args = {k: _eval(v, scope) for k, v in call.hash}
    return _CALLS[call.helper](args, hash_args)


def _eval(expr: Expr, scope: _Scope) -> object:
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, SubExpr):
        return _call(expr.call, scope)
    return _resolve(expr, scope)


def _resolve(path: PathExpr, scope: _Scope) -> object:
    if path.data:
        value: object = scope.data.get(path.parts[0]) if path.parts else None
        parts = path.parts[1:]
    else:
        if path.depth >= len(scope.contexts):
            return None
        value = scope.contexts[-1 - path.depth]
        parts = path.parts
    for part in parts:
        value = _member(value, part)
        if value is None:
            return None
    return value


def _member(value: object, key: str) -> object:
    if isinstance(value, Mapping):
        return value.get(key)
    if isinstance(value, list | tuple | str):
        if key == "length":
            return len(value)
        if isinstance(value, list | tuple) and key.isdigit():
            i = int(key)
            return value[i] if i < len(value) else None
    return None


# ---------------------------------------------------------------- values


def is_truthy(value: object) -> bool:
    """Handlebars' ``{{#if}}``: false for null, false, 0, NaN, "" and []."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str | list | tuple):
        return len(value) > 0
    return True


def _is_empty(value: object) -> bool:
    """Handlebars' ``isEmpty`` (used by ``{{#with}}``): like falsy, but 0 is not."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return False
    return not is_truthy(value)


def to_display(value: object) -> str:
    """How JavaScript would print a JSON value: ``1.0`` → ``1``, ``[a,b]`` → ``a,b``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, list | tuple):
        return ",".join(to_display(v) for v in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


_HTML_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&#x27;",
        "`": "&#x60;",
        "=": "&#x3D;",
    }
)


def escape_html(text: str) -> str:
    """Handlebars.js ``escapeExpression``: ``& < > " ' ` =``."""
    return text.translate(_HTML_ESCAPES)


# ---------------------------------------------------------------- helpers

_Helper = Callable[[list[object], dict[str, object]], object]


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _equals(args: list[object], _: dict[str, object]) -> bool:
    a, b = args
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None and not (isinstance(a, str) and isinstance(b, str)):
        return na == nb  # 5 == 5.0 == "5", as in JavaScript's ==
    return a == b


def _compare(args: list[object]) -> int | None:
    a, b = args
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return (na > nb) - (na < nb)
    if isinstance(a, str) and isinstance(b, str):  # e.g. ISO dates
        return (a > b) - (a < b)
    return None


def _greater(args: list[object], _: dict[str, object]) -> bool:
    return _compare(args) == 1


def _less(args: list[object], _: dict[str, object]) -> bool:
    return _compare(args) == -1


def _insert(args: list[object], hash_args: dict[str, object]) -> object:
    """``{{insert name "default=Customer"}}`` (or ``default="Customer"``)."""
    value = args[0]
    if value is not None and value != "":
        return value
    default: object = hash_args.get("default", "")
    if len(args) > 1:
        default = to_display(args[1]).removeprefix("default=")
    return default


def _length(args: list[object], _: dict[str, object]) -> int:
    value = args[0]
    return len(value) if isinstance(value, str | list | tuple | Mapping) else 0


def _lookup(args: list[object], _: dict[str, object]) -> object:
    return _member(args[0], to_display(args[1]))


_CALLS: dict[str, _Helper] = {
    "equals": _equals,
    "notEquals": lambda a, h: not _equals(a, h),
    "greaterThan": _greater,
    "lessThan": _less,
    "and": lambda a, _: all(is_truthy(v) for v in a),
    "or": lambda a, _: any(is_truthy(v) for v in a),
    "insert": _insert,
    "length": _length,
    "lookup": _lookup,
    "formatDate": lambda a, _: format_date(a[0], to_display(a[1]), a[2] if len(a) > 2 else None),
}

# ---------------------------------------------------------------- formatDate

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DATE_TOKENS = re.compile(
    r"\[([^\]]*)\]|YYYY|YY|MMMM|MMM|MM|M|DD|D|dddd|ddd|HH|H|hh|h|mm|m|ss|s|A|a|ZZ|Z"
)
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def _parse_timestamp(value: object) -> datetime | None:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return None


def format_date(timestamp: object, fmt: str, offset: object = None) -> str:
    """SendGrid's ``{{formatDate timeStamp dateFormat [timezoneOffset]}}``.

    ``timeStamp`` is ISO 8601 (``2020-01-01T23:00:00.000Z``) or Unix seconds;
    ``dateFormat`` uses moment.js tokens (``YYYY MM DD HH mm ss A`` …, text
    in ``[brackets]`` is literal); ``timezoneOffset`` is like ``-0800``.
    Output is in UTC unless an offset is given; an unreadable timestamp
    renders as nothing, like a missing value.
    """
    when = _parse_timestamp(timestamp)
    if when is None:
        return ""
    m = _OFFSET.match(to_display(offset).strip()) if offset is not None else None
    if m:
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        when = when.astimezone(timezone(-delta if m.group(1) == "-" else delta))
    else:
        when = when.astimezone(UTC)
    utcoffset = when.utcoffset() or timedelta(0)
    sign = "-" if utcoffset < timedelta(0) else "+"
    minutes = abs(int(utcoffset.total_seconds())) // 60
    hour12 = when.hour % 12 or 12
    tokens = {
        "YYYY": f"{when.year:04d}",
        "YY": f"{when.year % 100:02d}",
        "MMMM": _MONTHS[when.month - 1],
        "MMM": _MONTHS[when.month - 1][:3],
        "MM": f"{when.month:02d}",
        "M": str(when.month),
        "DD": f"{when.day:02d}",
        "D": str(when.day),
        "dddd": _DAYS[when.weekday()],
        "ddd": _DAYS[when.weekday()][:3],
        "HH": f"{when.hour:02d}",
        "H": str(when.hour),
        "hh": f"{hour12:02d}",
        "h": str(hour12),
        "mm": f"{when.minute:02d}",
        "m": str(when.minute),
        "ss": f"{when.second:02d}",
        "s": str(when.second),
        "A": "AM" if when.hour < 12 else "PM",
        "a": "am" if when.hour < 12 else "pm",
        "ZZ": f"{sign}{minutes // 60:02d}{minutes % 60:02d}",
        "Z": f"{sign}{minutes // 60:02d}:{minutes % 60:02d}",
    }
    return _DATE_TOKENS.sub(
        lambda t: t.group(1) if t.group(1) is not None else tokens[t.group(0)], fmt
    )


# ---------------------------------------------------------------- legacy


@functools.lru_cache(maxsize=256)
def _tag_pattern(keys: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True)))


def _replace_tags(text: str, table: Mapping[str, str]) -> str:
    keys = tuple(sorted(k for k in table if k))
    if not keys or not text:
        return text
    return _tag_pattern(keys).sub(lambda m: table[m.group(0)], text)


def apply_substitutions(
    content: str,
    substitutions: Mapping[str, str],
    sections: Mapping[str, str] | None = None,
) -> str:
    """Legacy templates: replace substitution tags, then section tags.

    Tags are literal strings (``-name-``, ``%name%``, ``{{name}}``…) replaced
    in one left-to-right pass where, at each position, the longest matching
    tag wins (so ``-name-full-`` is not eaten by ``-name-``). A replacement
    is never scanned again, so a value that happens to contain a tag is
    inserted as written. The one exception is sections: a substitution value
    (or the content itself) may name a section tag, which is replaced by the
    section's text with the substitutions applied inside it.
    """
    text = _replace_tags(content, substitutions)
    if sections:
        expanded = {tag: _replace_tags(body, substitutions) for tag, body in sections.items()}
        text = _replace_tags(text, expanded)
    return text
