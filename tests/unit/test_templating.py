"""Dynamic (Handlebars) templates and legacy substitutions, as SendGrid renders them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.domain import templating
from appliance.domain.handlebars import HELPERS
from appliance.domain.templating import (
    TemplateError,
    TemplatePart,
    apply_substitutions,
    compile_template,
    render_dynamic_template,
    render_template,
)

DATA: dict[str, object] = {
    "name": "Ann",
    "user": {"name": "Zoë", "age": 0, "profile": {"city": "Oslo"}},
    "items": [{"x": 1, "label": "one"}, {"x": 2.0, "label": "two"}, {"x": 3, "label": "three"}],
    "empty": [],
    "n": 5,
    "price": 19.5,
    "flag": True,
    "off": False,
    "nothing": None,
    "html": "<b>Tom & \"Jerry\"</b> 'x' `y` a=b",
    "obj": {"a": 1, "b": 2},
    "when": "2020-01-01T23:00:00.000Z",
}


def render(source: str, data: object = DATA, part: TemplatePart = TemplatePart.HTML) -> str:
    return render_template(source, data, part)


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hi {{name}}!", "Hi Ann!"),
        ("{{ name }}", "Ann"),
        ("{{user.name}} in {{user.profile.city}}", "Zoë in Oslo"),
        ("{{user/name}}", "Zoë"),
        ("{{n}} {{price}} {{flag}} {{off}} {{user.age}}", "5 19.5 true false 0"),
        ("{{items.1.x}}", "2"),  # 2.0 prints as JavaScript would
        ("{{items.[0].label}}", "one"),
        ("{{items.length}} {{name.length}}", "3 3"),
        ("{{obj}}", "[object Object]"),
        ("{{this.name}} {{./name}}", "Ann Ann"),
        ("{{@root.name}}", "Ann"),
    ],
)
def test_values_and_paths(source: str, expected: str) -> None:
    assert render(source) == expected


@pytest.mark.parametrize(
    "source",
    ["{{missing}}", "{{missing.deep.path}}", "{{nothing}}", "{{user.nope}}", "{{items.9.x}}"],
)
def test_missing_values_render_empty(source: str) -> None:
    assert render(f"[{source}]") == "[]"


def test_this_inside_each_over_strings() -> None:
    assert render("{{#each tags}}<{{this}}>{{/each}}", {"tags": ["a", "b"]}) == "<a><b>"


def test_double_braces_escape_html_triple_braces_do_not() -> None:
    escaped = "&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt; &#x27;x&#x27; &#x60;y&#x60; a&#x3D;b"
    assert render("{{html}}") == escaped
    assert render("{{{html}}}") == DATA["html"]
    assert render("{{&html}}") == DATA["html"]


def test_subject_is_escaped_too_as_sendgrid_does() -> None:
    out = render("Re: {{name}}", {"name": "Q&A"}, TemplatePart.SUBJECT)
    assert out == "Re: Q&amp;A"
    assert render("Re: {{{name}}}", {"name": "Q&A"}, TemplatePart.SUBJECT) == "Re: Q&A"


def test_comments_and_escaped_mustaches() -> None:
    assert render("a{{! note }}b{{!-- has }} inside --}}c") == "abc"
    assert render(r"\{{name}} \\{{name}}") == r"{{name}} \Ann"
    assert render("a {{!-- x --~}}   b   {{~! y }} c") == "a b c"


# ---------------------------------------------------------------- blocks


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{#if flag}}yes{{/if}}", "yes"),
        ("{{#if off}}yes{{else}}no{{/if}}", "no"),
        ("{{#if user.age}}yes{{else}}zero is false{{/if}}", "zero is false"),
        ("{{#if empty}}yes{{else}}empty list is false{{/if}}", "empty list is false"),
        ("{{#if obj}}objects are true{{/if}}", "objects are true"),
        ("{{#if missing}}yes{{else}}no{{/if}}", "no"),
        ("{{#if missing}}a{{else if n}}b{{else}}c{{/if}}", "b"),
        ("{{#if missing}}a{{else if off}}b{{else}}c{{/if}}", "c"),
        ("{{#unless flag}}yes{{else}}no{{/unless}}", "no"),
        ("{{#unless missing}}shown{{/unless}}", "shown"),
        ("{{^empty}}inverted section{{/empty}}", "inverted section"),
        ("{{#user}}{{name}}{{/user}}", "Zoë"),
    ],
)
def test_conditionals(source: str, expected: str) -> None:
    assert render(source) == expected


def test_each_with_index_first_last() -> None:
    source = (
        "{{#each items}}{{@index}}:{{this.label}}"
        "{{#if @first}}^{{/if}}{{#if @last}}${{/if}} {{/each}}"
    )
    assert render(source) == "0:one^ 1:two 2:three$ "


def test_each_else_when_empty_or_missing() -> None:
    assert render("{{#each empty}}x{{else}}none{{/each}}") == "none"
    assert render("{{#each missing}}x{{else}}none{{/each}}") == "none"


def test_each_over_object_gives_key() -> None:
    assert render("{{#each obj}}{{@key}}={{this}};{{/each}}") == "a=1;b=2;"


def test_parent_and_root_inside_each() -> None:
    source = "{{#each items}}{{label}}/{{../name}}/{{@root.n}} {{/each}}"
    assert render(source) == "one/Ann/5 two/Ann/5 three/Ann/5 "


def test_nested_each_index_is_the_inner_one() -> None:
    data = {"rows": [{"cells": ["a", "b"]}, {"cells": ["c"]}]}
    source = "{{#each rows}}[{{#each cells}}{{@index}}{{this}}{{/each}}]{{/each}}"
    assert render(source, data) == "[0a1b][0c]"


def test_with_changes_context_and_else() -> None:
    assert render("{{#with user.profile}}{{city}}{{/with}}") == "Oslo"
    assert render("{{#with missing}}x{{else}}no{{/with}}") == "no"


def test_block_lines_leave_no_blank_lines() -> None:
    source = "<ul>\n  {{#each items}}\n  <li>{{label}}</li>\n  {{/each}}\n</ul>\n"
    assert render(source) == "<ul>\n  <li>one</li>\n  <li>two</li>\n  <li>three</li>\n</ul>\n"


def test_tilde_strips_whitespace() -> None:
    assert render("a   {{~name~}}   b") == "aAnnb"


# ---------------------------------------------------------------- SendGrid helpers


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('{{#equals name "Ann"}}eq{{else}}ne{{/equals}}', "eq"),
        ("{{#equals n 5}}eq{{/equals}}", "eq"),
        ('{{#equals n "5"}}loose{{/equals}}', "loose"),
        ("{{#equals name user.name}}eq{{else}}ne{{/equals}}", "ne"),
        ('{{#notEquals name "Bob"}}ne{{/notEquals}}', "ne"),
        ("{{#greaterThan n 3}}gt{{else}}le{{/greaterThan}}", "gt"),
        ("{{#greaterThan n 5}}gt{{else}}le{{/greaterThan}}", "le"),
        ("{{#lessThan price 20}}cheap{{/lessThan}}", "cheap"),
        (
            '{{#lessThan "10" 9}}lt{{else}}numeric strings compare as numbers{{/lessThan}}',
            "numeric strings compare as numbers",
        ),
        (
            "{{#greaterThan name 3}}gt{{else}}incomparable is false{{/greaterThan}}",
            "incomparable is false",
        ),
        ("{{#and flag name}}both{{/and}}", "both"),
        ("{{#and flag empty}}both{{else}}not both{{/and}}", "not both"),
        ("{{#or off missing}}any{{else}}none{{/or}}", "none"),
        ("{{#or off n}}any{{/or}}", "any"),
        ("{{#if (greaterThan (length items) 2)}}many{{/if}}", "many"),
        ("{{length items}} {{length name}} {{length missing}}", "3 3 0"),
        ("{{equals n 5}}", "true"),
        ('{{lookup obj "b"}}', "2"),
    ],
)
def test_sendgrid_helpers(source: str, expected: str) -> None:
    assert render(source) == expected


def test_insert_uses_value_or_default() -> None:
    assert render('Hello {{insert name "default=Customer"}}') == "Hello Ann"
    assert render('Hello {{insert first "default=Customer"}}') == "Hello Customer"
    assert render('about {{insert business "your business"}}') == "about your business"
    assert render('{{insert first default="Friend"}}') == "Friend"
    assert render('{{insert first "default=<you>"}}') == "&lt;you&gt;"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('{{formatDate when "MMMM DD, YYYY h:mm:ss A"}}', "January 01, 2020 11:00:00 PM"),
        ('{{formatDate when "YYYY-MM-DD HH:mm ZZ" "-0800"}}', "2020-01-01 15:00 -0800"),
        ('{{formatDate when "ddd D MMM YY, hh:mm a Z" "+05:30"}}', "Thu 2 Jan 20, 04:30 am +05:30"),
        ('{{formatDate when "[Year] YYYY"}}', "Year 2020"),
        ('{{formatDate 0 "YYYY-MM-DD"}}', "1970-01-01"),
        ('{{formatDate "not a date" "YYYY"}}', ""),
    ],
)
def test_format_date(source: str, expected: str) -> None:
    assert render(source) == expected


def test_helper_table_and_runtime_agree() -> None:
    runtime = set(templating._CALLS) | {"if", "unless", "each", "with"}
    assert runtime == set(HELPERS)


def test_key_named_like_a_helper_is_a_plain_lookup() -> None:
    assert render("{{length}} {{insert}}", {"length": "long", "insert": "ok"}) == "long ok"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("source", "where", "what"),
    [
        (
            "<p>\n  {{#if a}}\n</p>",
            "line 2, column 3",
            "{{#if a}} is never closed (expected {{/if}})",
        ),
        (
            "{{#each items}}\n{{#if a}}x{{/each}}",
            "line 2, column 11",
            "{{/each}}: does not close {{#if a}} opened at line 2, column 1",
        ),
        ("x {{/if}}", "line 1, column 3", "closes a block that was never opened"),
        ("{{else}}", "line 1, column 1", "outside of any block"),
        ("{{#if a}}{{else}}{{else}}{{/if}}", "line 1, column 18", "second {{else}}"),
        ("ab\ncd {{name", "line 2, column 4", "'{{' is never closed"),
        ("{{!-- open", "line 1, column 1", "comment is never closed"),
        ("{{bogus name}}", "line 1, column 3", "unknown helper 'bogus'"),
        ("{{#if a b}}{{/if}}", "line 1, column 4", "'if' takes 1 argument(s), got 2"),
        ("{{#each}}{{/each}}", "line 1, column 4", "'each' takes 1 argument(s), got 0"),
        ("{{#insert x}}{{/insert}}", "line 1, column 1", "'insert' cannot be used as a block"),
        ("{{if x}}", "line 1, column 1", "'if' can only be used as a block"),
        ("{{> partial}}", "line 1, column 1", "partials are not supported"),
        ("{{equals (length x}}", "line 1, column 10", "sub-expression is missing its ')'"),
        ("{{name )}}", "line 1, column 8", "unexpected ')'"),
    ],
)
def test_malformed_templates_say_what_and_where(source: str, where: str, what: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(source, part=TemplatePart.TEXT)
    message = str(info.value)
    assert message.startswith(f"text template, {where}: "), message
    assert what in message
    assert info.value.part is TemplatePart.TEXT


def test_error_names_the_part() -> None:
    with pytest.raises(TemplateError, match=r"^subject template, line 1, column 1: "):
        render_dynamic_template({}, subject="{{#if x}}", html="<p>fine</p>")


def test_blocks_nested_too_deep_are_refused_not_crashing() -> None:
    source = "{{#if a}}" * 150 + "{{/if}}" * 150
    with pytest.raises(TemplateError, match="nested deeper than"):
        render(source)


_FRAGMENTS = st.sampled_from(
    (
        "{{",
        "}}",
        "{{{",
        "}}}",
        "#if a",
        "#each xs",
        "/if",
        "/each",
        "else",
        "^",
        "~",
        "!",
        "--",
        "(",
        ")",
        '"',
        "=",
        " ",
        "\n",
        "a",
        "xs",
        "this",
        "@index",
        "../",
        ".",
        "equals",
        "\\",
    )
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=30).map("".join))
def test_any_text_renders_or_raises_template_error(source: str) -> None:
    try:
        out = render(source, {"a": 1, "xs": [1, {"a": [2]}, "s"]})
    except TemplateError:
        return
    assert isinstance(out, str)


# ---------------------------------------------------------------- caching


def test_compiled_templates_are_cached_and_reusable() -> None:
    source = "Hi {{name}} (cache test)"
    first = compile_template(source, TemplatePart.HTML)
    assert compile_template(source, TemplatePart.TEXT) is first
    assert first.render({"name": "A"}) == "Hi A (cache test)"
    assert first.render({"name": "B"}) == "Hi B (cache test)"


def test_render_dynamic_template_renders_each_part() -> None:
    out = render_dynamic_template(
        {"name": "Ann"}, subject="Hi {{name}}", html="<p>{{name}}</p>", text=None
    )
    assert (out.subject, out.html, out.text) == ("Hi Ann", "<p>Ann</p>", None)


# ---------------------------------------------------------------- legacy


def test_substitutions_replace_literal_tags() -> None:
    assert apply_substitutions("Hi -name-, -name-!", {"-name-": "Ann"}) == "Hi Ann, Ann!"


def test_substitutions_longest_tag_wins() -> None:
    subs = {"-name-": "Ann", "-name-full-": "Ann Smith"}
    assert apply_substitutions("-name-full- / -name-", subs) == "Ann Smith / Ann"


def test_substituted_values_are_not_substituted_again() -> None:
    subs = {"-a-": "-b-", "-b-": "B"}
    assert apply_substitutions("-a- -b-", subs) == "-b- B"


def test_substitution_tags_are_not_regex() -> None:
    assert apply_substitutions("cost: $1.00 (.*)", {"(.*)": "x", "$1": "y"}) == "cost: y.00 x"


def test_sections_expand_with_substitutions_inside() -> None:
    subs = {"-name-": "Ann", "-greeting-": "%female_greeting%"}
    sections = {"%female_greeting%": "Dear Ms. -name-", "%male_greeting%": "Dear Mr. -name-"}
    assert apply_substitutions("-greeting-,", subs, sections) == "Dear Ms. Ann,"


def test_no_substitutions_leaves_content_alone() -> None:
    assert apply_substitutions("-name-", {}) == "-name-"
    assert apply_substitutions("-name-", {"": "x"}) == "-name-"
