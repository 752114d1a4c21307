"""Handlebars syntax: source text in, a tree of frozen nodes out.

The dialect is the one SendGrid's dynamic templates accept: mustaches with
dotted paths, ``this``, ``../`` and ``@data`` variables, raw ``{{{ }}}`` and
``{{& }}``, comments, block helpers with ``{{else}}`` and ``{{else if …}}``
chains, sub-expressions ``(helper arg)``, string/number/boolean literals,
``key=value`` hash arguments, ``~`` whitespace control and Handlebars'
"standalone line" rule (a line holding only a block tag or a comment leaves
no trace in the output). Partials and decorators are refused.

Which names are helpers, and how many arguments each takes, is part of the
dialect (``HELPERS``), so a misspelt helper or a wrong argument count is a
syntax error with a line and column, found once when the template is
compiled rather than once per message. Evaluation lives in
``appliance.domain.templating``.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from enum import Enum
from typing import NoReturn

MAX_NESTING = 100  # blocks inside blocks, sub-expressions inside sub-expressions


class HandlebarsSyntaxError(Exception):
    """A template that cannot be parsed: what is wrong and where (1-based)."""

    def __init__(self, reason: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {reason}")
        self.reason = reason
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class HelperSignature:
    """How a helper may be called: argument count and block/inline use."""

    min_args: int
    max_args: int | None  # None: any number
    block: bool
    inline: bool


# The SendGrid dialect: Handlebars built-ins plus SendGrid's own helpers.
HELPERS: dict[str, HelperSignature] = {
    "if": HelperSignature(1, 1, block=True, inline=False),
    "unless": HelperSignature(1, 1, block=True, inline=False),
    "each": HelperSignature(1, 1, block=True, inline=False),
    "with": HelperSignature(1, 1, block=True, inline=False),
    "equals": HelperSignature(2, 2, block=True, inline=True),
    "notEquals": HelperSignature(2, 2, block=True, inline=True),
    "greaterThan": HelperSignature(2, 2, block=True, inline=True),
    "lessThan": HelperSignature(2, 2, block=True, inline=True),
    "and": HelperSignature(1, None, block=True, inline=True),
    "or": HelperSignature(1, None, block=True, inline=True),
    "insert": HelperSignature(1, 2, block=False, inline=True),
    "formatDate": HelperSignature(2, 3, block=False, inline=True),
    "length": HelperSignature(1, 1, block=False, inline=True),
    "lookup": HelperSignature(2, 2, block=False, inline=True),
}


# ---------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class PathExpr:
    """``name.sub``, ``this``, ``../up``, ``@index``, ``@root.x``."""

    data: bool  # starts with "@"
    depth: int  # number of leading "../"
    parts: tuple[str, ...]  # empty for "this" / "."
    original: str
    explicit_this: bool = False  # "this.x" / "./x": never a helper


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class SubExpr:
    call: Call


Expr = PathExpr | Literal | SubExpr


@dataclass(frozen=True, slots=True)
class Call:
    """A helper call (``helper`` set) or a plain lookup of ``head``."""

    head: PathExpr
    params: tuple[Expr, ...] = ()
    hash: tuple[tuple[str, Expr], ...] = ()
    helper: str | None = None


@dataclass(frozen=True, slots=True)
class Text:
    value: str


@dataclass(frozen=True, slots=True)
class Mustache:
    call: Call
    escape: bool


@dataclass(frozen=True, slots=True)
class Block:
    """``{{#call}}program{{else}}inverse{{/…}}`` (inverted blocks swapped)."""

    call: Call
    program: tuple[Node, ...]
    inverse: tuple[Node, ...]


Node = Text | Mustache | Block


# ---------------------------------------------------------------- tokens


class _Kind(Enum):
    TEXT = "text"
    MUSTACHE = "mustache"
    RAW = "raw"
    OPEN = "open"  # {{#x}}
    OPEN_INVERSE = "open inverse"  # {{^x}}
    ELSE = "else"  # {{else}}, {{^}}, {{else if x}}
    CLOSE = "close"  # {{/x}}
    COMMENT = "comment"


_STANDALONE_KINDS = {_Kind.OPEN, _Kind.OPEN_INVERSE, _Kind.ELSE, _Kind.CLOSE, _Kind.COMMENT}


@dataclass(slots=True)
class _Token:
    kind: _Kind
    text: str  # literal text, or the expression inside the tag
    offset: int  # where the token starts in the source
    body_offset: int = 0  # where ``text`` starts in the source (tags)
    strip_left: bool = False  # "{{~"
    strip_right: bool = False  # "~}}"
    original: str = ""  # the whole tag as written, for messages


class _Positions:
    """Offset → (line, column), both 1-based."""

    def __init__(self, source: str) -> None:
        self._starts = [0] + [m.end() for m in re.finditer(r"\n", source)]

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1


def _tokenize(source: str, pos: _Positions) -> list[_Token]:
    tokens: list[_Token] = []
    text: list[str] = []
    text_start = 0
    i = 0
    n = len(source)

    def flush(upto: int) -> None:
        nonlocal text_start
        if text:
            tokens.append(_Token(_Kind.TEXT, "".join(text), text_start))
            text.clear()
        text_start = upto

    while i < n:
        j = source.find("{{", i)
        if j < 0:
            text.append(source[i:])
            break
        if j > 0 and source[j - 1] == "\\":
            if j > 1 and source[j - 2] == "\\":  # "\\{{": a literal backslash, then a tag
                text.append(source[i : j - 1])
            else:  # "\{{": a literal "{{"
                text.append(source[i : j - 1] + "{{")
                i = j + 2
                continue
        else:
            text.append(source[i:j])
        flush(j)
        i = _read_tag(source, j, tokens, pos)
        text_start = i
    flush(n)
    return tokens


_COMMENT_END = re.compile(r"(~?)\}\}")
_LONG_COMMENT_END = re.compile(r"--(~?)\}\}")


def _read_tag(source: str, start: int, tokens: list[_Token], pos: _Positions) -> int:
    """Read the tag at ``start`` (which holds "{{"), append it, return its end."""
    i = start + 2
    strip_left = source.startswith("~", i)
    if strip_left:
        i += 1
    if source.startswith("!", i):
        long = source.startswith("!--", i)
        closer = _LONG_COMMENT_END if long else _COMMENT_END
        m = closer.search(source, i + 3 if long else i)
        if m is None:
            line, col = pos.at(start)
            want = "--}}" if long else "}}"
            raise HandlebarsSyntaxError(f"comment is never closed with '{want}'", line, col)
        stop = m.end()
        strip_right = m.group(1) == "~"
        tokens.append(
            _Token(_Kind.COMMENT, "", start, strip_left=strip_left, strip_right=strip_right)
        )
        return stop
    raw = source.startswith("{", i)
    if raw:
        i += 1
    end = _find_tag_end(source, i)
    if end < 0:
        line, col = pos.at(start)
        raise HandlebarsSyntaxError(
            f"'{{{{' is never closed with '{'}}}' if raw else '}}'}'", line, col
        )
    body_end = end
    strip_right = end > i and source[end - 1] == "~"
    if strip_right:
        body_end -= 1
    stop = end + 2
    if raw:
        if not source.startswith("}", stop):
            line, col = pos.at(start)
            raise HandlebarsSyntaxError("'{{{' must be closed with '}}}'", line, col)
        stop += 1
    body = source[i:body_end]
    tok = _Token(
        _Kind.RAW if raw else _Kind.MUSTACHE,
        body,
        start,
        body_offset=i,
        strip_left=strip_left,
        strip_right=strip_right,
        original=source[start:stop],
    )
    if not raw:
        _classify(tok, pos)
    tokens.append(tok)
    return stop


def _find_tag_end(source: str, i: int) -> int:
    """Offset of the "}}" ending a tag body starting at ``i``, skipping strings."""
    quote = ""
    n = len(source)
    while i < n:
        c = source[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "}" and source.startswith("}}", i):
            return i
        i += 1
    return -1


_ELSE_RE = re.compile(r"\s*else(?=\s|$)")


def _classify(tok: _Token, pos: _Positions) -> None:
    body = tok.text
    first = body[:1]
    if first in ("#", "^", "/", "&"):
        rest = body[1:]
        if first == "#" and rest[:1] in (">", "*"):
            _fail(tok, pos, "partial blocks and decorators are not supported")
        if first == "^" and not rest.strip():
            tok.kind, tok.text = _Kind.ELSE, ""
            return
        tok.kind = {
            "#": _Kind.OPEN,
            "^": _Kind.OPEN_INVERSE,
            "/": _Kind.CLOSE,
            "&": _Kind.RAW,
        }[first]
        tok.text, tok.body_offset = rest, tok.body_offset + 1
    elif first == ">":
        _fail(tok, pos, "partials are not supported")
    elif first == "*":
        _fail(tok, pos, "decorators are not supported")
    else:
        m = _ELSE_RE.match(body)
        if m:
            tok.kind = _Kind.ELSE
            tok.text, tok.body_offset = body[m.end() :], tok.body_offset + m.end()


def _fail(tok: _Token, pos: _Positions, reason: str) -> NoReturn:
    line, col = pos.at(tok.offset)
    raise HandlebarsSyntaxError(f"{tok.original or 'tag'}: {reason}", line, col)


# ---------------------------------------------------------------- whitespace


def _is_blank_before(tokens: list[_Token], i: int) -> bool:
    if i == 0:
        return True
    prev = tokens[i - 1]
    if prev.kind is not _Kind.TEXT:
        return False
    nl = prev.text.rfind("\n")
    tail = prev.text[nl + 1 :]
    return (nl >= 0 or i == 1) and tail.strip(" \t") == ""


def _is_blank_after(tokens: list[_Token], i: int) -> bool:
    if i == len(tokens) - 1:
        return True
    nxt = tokens[i + 1]
    if nxt.kind is not _Kind.TEXT:
        return False
    m = re.match(r"[ \t]*(\r?\n|\Z)", nxt.text)
    return m is not None and (m.group(1) != "" or i + 1 == len(tokens) - 1)


def _control_whitespace(tokens: list[_Token]) -> None:
    """Apply the standalone-line rule, then ``~`` stripping, in place."""
    standalone = [
        t.kind in _STANDALONE_KINDS and _is_blank_before(tokens, i) and _is_blank_after(tokens, i)
        for i, t in enumerate(tokens)
    ]
    for i, alone in enumerate(standalone):
        if not alone:
            continue
        if i > 0:
            prev = tokens[i - 1]
            prev.text = prev.text[: prev.text.rfind("\n") + 1]
        if i + 1 < len(tokens):
            nxt = tokens[i + 1]
            nxt.text = re.sub(r"^[ \t]*(\r?\n)?", "", nxt.text, count=1)
    for i, t in enumerate(tokens):
        if t.strip_left and i > 0 and tokens[i - 1].kind is _Kind.TEXT:
            tokens[i - 1].text = tokens[i - 1].text.rstrip()
        if t.strip_right and i + 1 < len(tokens) and tokens[i + 1].kind is _Kind.TEXT:
            tokens[i + 1].text = tokens[i + 1].text.lstrip()


# ---------------------------------------------------------------- expressions

_ID_CHARS = r"[^\s!\"#%&'()*+,./;<=>@\[\\\]^`{|}~]"
_EXPR_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<number>-?\d+(?:\.\d+)?(?=[\s()=~]|$))
  | (?P<hashkey>IDC+)=
  | (?P<path>@?(?:\.\./)*(?:\[[^\]]*\]|\.\.|\.|IDC+)(?:[./](?:\[[^\]]*\]|IDC+))*)
    """.replace("IDC", _ID_CHARS),
    re.VERBOSE,
)
_SEGMENT = re.compile(r"\[([^\]]*)\]|(" + _ID_CHARS + r"+)|(\.\.|\.)")
_KEYWORDS: dict[str, str | int | float | bool | None] = {
    "true": True,
    "false": False,
    "null": None,
    "undefined": None,
}


class _ExprParser:
    """Recursive descent over one tag body: ``head param… key=value…``."""

    def __init__(self, tok: _Token, pos: _Positions) -> None:
        self.tok = tok
        self.pos = pos
        self.items: list[tuple[str, str, int]] = []  # (kind, text, source offset)
        body = tok.text
        i = 0
        while i < len(body):
            m = _EXPR_TOKEN.match(body, i)
            if m is None:
                self.error(f"unexpected {body[i]!r}", tok.body_offset + i)
            assert m.lastgroup is not None
            if m.lastgroup != "ws":
                text = m.group("hashkey") if m.lastgroup == "hashkey" else m.group(0)
                self.items.append((m.lastgroup, text, tok.body_offset + i))
            i = m.end()
        self.i = 0

    def error(self, reason: str, offset: int) -> NoReturn:
        line, col = self.pos.at(offset)
        raise HandlebarsSyntaxError(f"{self.tok.original}: {reason}", line, col)

    def call(self, *, block: bool, depth: int = 0) -> Call:
        if depth > MAX_NESTING:
            self.error("sub-expressions nested too deeply", self.tok.offset)
        if self.i >= len(self.items):
            self.error("expected a name", self.tok.offset)
        kind, text, offset = self.items[self.i]
        if kind != "path":
            self.error(f"expected a name, found {text!r}", offset)
        self.i += 1
        head, head_offset = self.path(text, offset), offset
        params: list[Expr] = []
        hash_args: list[tuple[str, Expr]] = []
        while self.i < len(self.items) and self.items[self.i][0] != "close":
            kind, text, offset = self.items[self.i]
            if kind == "hashkey":
                self.i += 1
                hash_args.append((text, self.expr(depth)))
            elif hash_args:
                self.error("positional arguments must come before key=value ones", offset)
            else:
                params.append(self.expr(depth))
        return self.resolve(head, params, hash_args, block=block, offset=head_offset)

    def expr(self, depth: int) -> Expr:
        if self.i >= len(self.items):
            self.error("expected a value", self.tok.offset + len(self.tok.original) - 2)
        kind, text, offset = self.items[self.i]
        self.i += 1
        if kind == "string":
            return Literal(_unquote(text))
        if kind == "number":
            return Literal(float(text) if "." in text else int(text))
        if kind == "path":
            if text in _KEYWORDS:
                return Literal(_KEYWORDS[text])
            return self.path(text, offset)
        if kind == "open":
            inner = self.call(block=False, depth=depth + 1)
            if self.i >= len(self.items) or self.items[self.i][0] != "close":
                self.error("sub-expression is missing its ')'", offset)
            self.i += 1
            return SubExpr(inner)
        self.error(f"unexpected {text!r}", offset)

    def path(self, text: str, offset: int) -> PathExpr:
        data = text.startswith("@")
        rest = text[1:] if data else text
        depth = 0
        while rest.startswith("../"):
            depth += 1
            rest = rest[3:]
        if rest == "..":
            depth, rest = depth + 1, ""
        parts: list[str] = []
        explicit_this = False
        for n, m in enumerate(_SEGMENT.finditer(rest)):
            literal, name, dots = m.group(1), m.group(2), m.group(3)
            if literal is not None:
                parts.append(literal)
            elif dots == "..":
                self.error("'../' is only allowed at the start of a path", offset)
            elif n == 0 and (dots == "." or name == "this") and not data:
                explicit_this = True
            elif name is not None:
                parts.append(name)
        return PathExpr(data, depth, tuple(parts), text, explicit_this)

    def resolve(
        self,
        head: PathExpr,
        params: list[Expr],
        hash_args: list[tuple[str, Expr]],
        *,
        block: bool,
        offset: int,
    ) -> Call:
        simple = not head.data and not head.explicit_this and head.depth == 0
        name = head.parts[0] if simple and len(head.parts) == 1 else None
        sig = HELPERS.get(name) if name is not None else None
        if sig is None or name is None:
            if params or hash_args:
                self.error(f"unknown helper {head.original!r}", offset)
            return Call(head)
        if not params and not hash_args and not (block and sig.block):
            return Call(head)  # a plain lookup of a key that happens to be a helper name
        if block and not sig.block:
            self.error(f"{name!r} cannot be used as a block ({{{{#{name}}}}})", self.tok.offset)
        if not block and not sig.inline:
            self.error(f"{name!r} can only be used as a block ({{{{#{name}}}}})", self.tok.offset)
        count = len(params)
        if count < sig.min_args or (sig.max_args is not None and count > sig.max_args):
            want = (
                f"{sig.min_args}"
                if sig.min_args == sig.max_args
                else f"at least {sig.min_args}"
                if sig.max_args is None
                else f"{sig.min_args} to {sig.max_args}"
            )
            self.error(f"{name!r} takes {want} argument(s), got {count}", offset)
        return Call(head, tuple(params), tuple(hash_args), helper=name)

    def finish(self) -> None:
        if self.i < len(self.items):
            _kind, text, offset = self.items[self.i]
            self.error(f"unexpected {text!r}", offset)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


# ---------------------------------------------------------------- blocks


@dataclass(slots=True)
class _Frame:
    tok: _Token | None  # None for the template itself
    call: Call | None
    program: list[Node]
    inverse: list[Node]
    in_inverse: bool = False
    chained: bool = False  # opened by {{else helper …}}; closed by its parent's {{/…}}
    inverted: bool = False  # {{^x}}…{{/x}}

    def add(self, node: Node) -> None:
        (self.inverse if self.in_inverse else self.program).append(node)

    def block(self) -> Block:
        assert self.call is not None
        program, inverse = tuple(self.program), tuple(self.inverse)
        if self.inverted:
            program, inverse = inverse, program
        return Block(self.call, program, inverse)


def parse(source: str) -> tuple[Node, ...]:
    """Parse a template; raise ``HandlebarsSyntaxError`` saying what and where."""
    pos = _Positions(source)
    tokens = _tokenize(source, pos)
    _control_whitespace(tokens)
    stack = [_Frame(None, None, [], [])]
    for tok in tokens:
        top = stack[-1]
        if tok.kind is _Kind.TEXT:
            if tok.text:
                top.add(Text(tok.text))
        elif tok.kind is _Kind.COMMENT:
            pass
        elif tok.kind in (_Kind.MUSTACHE, _Kind.RAW):
            p = _ExprParser(tok, pos)
            call = p.call(block=False)
            p.finish()
            top.add(Mustache(call, escape=tok.kind is _Kind.MUSTACHE))
        elif tok.kind in (_Kind.OPEN, _Kind.OPEN_INVERSE):
            if len(stack) > MAX_NESTING:
                _fail(tok, pos, f"blocks nested deeper than {MAX_NESTING}")
            p = _ExprParser(tok, pos)
            call = p.call(block=True)
            p.finish()
            stack.append(_Frame(tok, call, [], [], inverted=tok.kind is _Kind.OPEN_INVERSE))
        elif tok.kind is _Kind.ELSE:
            if top.tok is None:
                _fail(tok, pos, "is outside of any block")
            if top.in_inverse:
                _fail(tok, pos, f"second {{{{else}}}} in the same block {top.tok.original}")
            top.in_inverse = True
            if tok.text.strip():
                p = _ExprParser(tok, pos)
                call = p.call(block=True)
                p.finish()
                stack.append(_Frame(tok, call, [], [], chained=True))
        else:  # CLOSE
            p = _ExprParser(tok, pos)
            if not p.items or p.items[0][0] != "path" or len(p.items) > 1:
                _fail(tok, pos, "a closing tag holds exactly one name, as in {{/if}}")
            name = p.items[0][1]
            while stack[-1].chained:
                done = stack.pop()
                stack[-1].add(done.block())
            top = stack[-1]
            if top.tok is None or top.call is None:
                _fail(tok, pos, "closes a block that was never opened")
            if name != top.call.head.original:
                line, col = pos.at(top.tok.offset)
                _fail(
                    tok,
                    pos,
                    f"does not close {top.tok.original} opened at line {line}, column {col}",
                )
            stack.pop()
            stack[-1].add(top.block())
    unclosed = [f for f in stack[1:] if not f.chained]
    if unclosed:
        opened, opener = unclosed[-1].tok, unclosed[-1].call
        assert opened is not None
        assert opener is not None
        line, col = pos.at(opened.offset)
        raise HandlebarsSyntaxError(
            f"{opened.original} is never closed (expected {{{{/{opener.head.original}}}}})",
            line,
            col,
        )
    return tuple(stack[0].program)
