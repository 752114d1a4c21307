"""records_to_publish and check_records: each way a published record goes wrong."""

from __future__ import annotations

import pytest

from appliance.domain.dkim_keys import generate_key_pair
from appliance.domain.dns_records import (
    DnsRecord,
    DomainCheck,
    LookupKey,
    LookupResult,
    LookupStatus,
    RecordKind,
    RecordStatus,
    SendingDomainSettings,
    check_records,
    lookups_needed,
    records_to_publish,
)

KEY = generate_key_pair(selector="py20260512a3f9")
P = KEY.public_txt.split("p=", 1)[1]
SETTINGS = SendingDomainSettings(
    domain="example.com",
    dkim_selector=KEY.selector,
    dkim_public_txt=KEY.public_txt,
    ownership_token="tok123",
    bounce_mx_host="mx.postyard.example",
    spf_includes=("_spf.postyard.example",),
    spf_ip4=("203.0.113.7",),
    dmarc_rua="dmarc@example.com",
)
RECORDS = records_to_publish(SETTINGS)
DKIM_HOST = "py20260512a3f9._domainkey.example.com"

GOOD: dict[LookupKey, LookupResult] = {
    ("_postyard.example.com", "TXT"): LookupResult(
        LookupStatus.FOUND, ("postyard-verification=tok123",)
    ),
    (DKIM_HOST, "TXT"): LookupResult(LookupStatus.FOUND, (KEY.public_txt,)),
    ("example.com", "TXT"): LookupResult(
        LookupStatus.FOUND,
        (
            "google-site-verification=abc",
            "v=spf1 mx include:_spf.postyard.example ip4:203.0.113.0/24 ~all",
        ),
    ),
    ("bounces.example.com", "MX"): LookupResult(LookupStatus.FOUND, ("10 mx.postyard.example",)),
    ("bounces.example.com", "TXT"): LookupResult(
        LookupStatus.FOUND, ("v=spf1 include:_spf.postyard.example ip4:203.0.113.7 -all",)
    ),
    ("_dmarc.example.com", "TXT"): LookupResult(LookupStatus.FOUND, ("v=DMARC1; p=none",)),
}


def check(**changes: LookupResult) -> DomainCheck:
    keys = {
        "ownership": ("_postyard.example.com", "TXT"),
        "dkim": (DKIM_HOST, "TXT"),
        "spf": ("example.com", "TXT"),
        "rp_mx": ("bounces.example.com", "MX"),
        "rp_spf": ("bounces.example.com", "TXT"),
        "dmarc": ("_dmarc.example.com", "TXT"),
    }
    answers = dict(GOOD)
    for name, result in changes.items():
        answers[keys[name]] = result
    return check_records("example.com", RECORDS, answers)


def txt(*values: str) -> LookupResult:
    return LookupResult(LookupStatus.FOUND, values)


NXDOMAIN = LookupResult(LookupStatus.NXDOMAIN, detail="does not exist")


def test_records_to_publish_are_exact() -> None:
    by_kind = {r.kind: r for r in RECORDS}
    assert [(r.type, r.host) for r in RECORDS] == [
        ("TXT", "_postyard.example.com"),
        ("TXT", DKIM_HOST),
        ("TXT", "example.com"),
        ("MX", "bounces.example.com"),
        ("TXT", "bounces.example.com"),
        ("TXT", "_dmarc.example.com"),
    ]
    assert by_kind[RecordKind.OWNERSHIP].value == "postyard-verification=tok123"
    assert by_kind[RecordKind.DKIM].value == KEY.public_txt
    assert (
        by_kind[RecordKind.SPF].value == "v=spf1 include:_spf.postyard.example ip4:203.0.113.7 ~all"
    )
    assert by_kind[RecordKind.RETURN_PATH_SPF].value.endswith(" -all")
    mx = by_kind[RecordKind.RETURN_PATH_MX]
    assert (mx.priority, mx.value) == (10, "mx.postyard.example")
    assert mx.zone_line() == "bounces.example.com. 3600 IN MX 10 mx.postyard.example."
    assert by_kind[RecordKind.DMARC].value == "v=DMARC1; p=none; rua=mailto:dmarc@example.com"
    assert not by_kind[RecordKind.DMARC].required
    assert len(lookups_needed(RECORDS)) == 6


def test_long_dkim_value_is_split_into_255_character_strings_for_zone_files() -> None:
    dkim = next(r for r in RECORDS if r.kind is RecordKind.DKIM)
    strings = dkim.txt_strings()
    assert len(strings) == 2
    assert len(strings[0]) == 255
    assert "".join(strings) == KEY.public_txt
    assert dkim.zone_line().count('"') == 4


def test_good_domain_is_verified_with_every_record_found() -> None:
    result = check()
    assert result.verified
    assert [c.status for c in result.checks] == [RecordStatus.FOUND] * 6
    assert not result.problems
    assert not result.warnings


def test_dkim_missing() -> None:
    result = check(dkim=NXDOMAIN)
    c = result.by_kind(RecordKind.DKIM)
    assert not result.verified
    assert c.status is RecordStatus.MISSING
    assert DKIM_HOST in c.reason
    assert KEY.public_txt in c.reason


def test_dkim_split_value_joined_by_resolver_is_found() -> None:
    # One record of several strings arrives joined without separators.
    assert check(dkim=txt("".join([KEY.public_txt[:255], KEY.public_txt[255:]]))).verified


@pytest.mark.parametrize(
    "broken",
    [P[:200] + " " + P[200:], P[:100] + "\n" + P[100:], P[:255] + "\r\n\t" + P[255:]],
    ids=["space", "line-feed", "crlf-tab"],
)
def test_whitespace_inside_p_is_accepted_with_a_note(broken: str) -> None:
    c = check(dkim=txt(f"v=DKIM1; k=rsa; p={broken}")).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.FOUND
    assert "spaces or line breaks" in c.notes[0]


def test_leading_and_trailing_whitespace_is_accepted_with_a_note() -> None:
    c = check(dkim=txt(f"  {KEY.public_txt} \n")).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.FOUND
    assert "leading or trailing whitespace" in c.notes[0]


def test_quotes_stored_literally_are_wrong() -> None:
    value = f'"{KEY.public_txt[:255]}" "{KEY.public_txt[255:]}"'
    c = check(dkim=txt(value)).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.WRONG
    assert "quote characters" in c.reason


def test_escaped_line_break_pasted_as_text_is_wrong() -> None:
    c = check(dkim=txt(f"v=DKIM1; k=rsa; p={P[:50]}\\010{P[50:]}")).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.WRONG
    assert "backslash" in c.reason


def test_truncated_key_is_wrong_and_says_how_much_is_missing() -> None:
    c = check(dkim=txt(f"v=DKIM1; k=rsa; p={P[:255]}")).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.WRONG
    assert f"truncated: 255 of {len(P)} characters" in c.reason


def test_mistyped_base64_character_is_located() -> None:
    i = 120
    typo = P[:i] + ("A" if P[i] != "A" else "B") + P[i + 1 :]
    c = check(dkim=txt(f"v=DKIM1; k=rsa; p={typo}")).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.WRONG
    assert f"at character {i + 1}" in c.reason


def test_character_dropped_from_the_middle_is_invalid_base64() -> None:
    c = check(dkim=txt(f"v=DKIM1; k=rsa; p={P[:120] + P[121:]}")).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.WRONG
    assert "not valid base64" in c.reason


def test_non_base64_character_is_named() -> None:
    c = check(dkim=txt(f"v=DKIM1; k=rsa; p={P[:10]}*{P[10:]}")).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.WRONG
    assert "'*' at character 11" in c.reason


def test_other_key_is_wrong() -> None:
    other = generate_key_pair(selector="py20260512ffff").public_txt
    c = check(dkim=txt(other)).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.WRONG
    assert "different key" in c.reason


def test_missing_v_dkim1_is_wrong() -> None:
    c = check(dkim=txt(f"k=rsa; p={P}")).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.WRONG
    assert "does not start with v=DKIM1" in c.reason


def test_v_dkim1_not_first_is_wrong() -> None:
    c = check(dkim=txt(f"k=rsa; v=DKIM1; p={P}")).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.WRONG
    assert "must begin with exactly v=DKIM1" in c.reason


def test_wrong_key_type_is_wrong() -> None:
    c = check(dkim=txt(f"v=DKIM1; k=ed25519; p={P}")).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.WRONG
    assert "k=ed25519" in c.reason


def test_two_dkim_records_at_the_selector_are_wrong() -> None:
    c = check(dkim=txt(KEY.public_txt, f"v=DKIM1; k=rsa; p={P[:-8]}")).by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.WRONG
    assert "2 DKIM key records" in c.reason


def test_two_spf_records_at_apex_are_a_permerror_with_a_merged_suggestion() -> None:
    ours = "v=spf1 include:_spf.postyard.example ip4:203.0.113.7 ~all"
    result = check(spf=txt("v=spf1 include:_spf.google.com -all", ours))
    c = result.by_kind(RecordKind.SPF)
    assert not result.verified
    assert c.status is RecordStatus.WRONG
    assert "2 SPF records" in c.reason
    assert "RFC 7208" in c.reason
    assert c.reason.endswith(
        "v=spf1 include:_spf.google.com include:_spf.postyard.example ip4:203.0.113.7 -all"
    )


def test_spf_without_our_include_says_what_to_add() -> None:
    c = check(spf=txt("v=spf1 mx include:_spf.google.com ~all")).by_kind(RecordKind.SPF)
    assert c.status is RecordStatus.WRONG
    assert "add include:_spf.postyard.example ip4:203.0.113.7 before the 'all' term" in c.reason
    assert c.reason.endswith(
        "v=spf1 mx include:_spf.google.com include:_spf.postyard.example ip4:203.0.113.7 ~all"
    )


def test_spf_mechanism_after_all_does_not_count() -> None:
    c = check(spf=txt("v=spf1 -all include:_spf.postyard.example ip4:203.0.113.7")).by_kind(
        RecordKind.SPF
    )
    assert c.status is RecordStatus.WRONG


def test_spf_missing() -> None:
    c = check(spf=txt("google-site-verification=abc")).by_kind(RecordKind.SPF)
    assert c.status is RecordStatus.MISSING
    assert "Publish: v=spf1" in c.reason


def test_return_path_mx_missing_wrong_and_null() -> None:
    missing = check(rp_mx=LookupResult(LookupStatus.NODATA)).by_kind(RecordKind.RETURN_PATH_MX)
    assert missing.status is RecordStatus.MISSING
    assert "Publish: MX 10 mx.postyard.example" in missing.reason
    wrong = check(rp_mx=txt("10 mail.example.com.")).by_kind(RecordKind.RETURN_PATH_MX)
    assert wrong.status is RecordStatus.WRONG
    assert "points to mail.example.com" in wrong.reason
    null = check(rp_mx=txt("0 .")).by_kind(RecordKind.RETURN_PATH_MX)
    assert null.status is RecordStatus.WRONG
    assert "null MX" in null.reason
    shadowed = check(rp_mx=txt("10 mx.postyard.example.", "5 mail.example.com."))
    assert shadowed.by_kind(RecordKind.RETURN_PATH_MX).status is RecordStatus.WRONG


def test_dmarc_absent_is_a_warning_not_a_blocker() -> None:
    result = check(dmarc=NXDOMAIN)
    c = result.by_kind(RecordKind.DMARC)
    assert result.verified
    assert c.status is RecordStatus.MISSING
    assert result.warnings == (c,)
    assert "recommended" in c.reason


def test_two_dmarc_records_are_wrong() -> None:
    c = check(dmarc=txt("v=DMARC1; p=none", "v=DMARC1; p=reject")).by_kind(RecordKind.DMARC)
    assert c.status is RecordStatus.WRONG


def test_ownership_token_from_an_earlier_attempt_is_wrong() -> None:
    c = check(ownership=txt("postyard-verification=old")).by_kind(RecordKind.OWNERSHIP)
    assert c.status is RecordStatus.WRONG
    assert "postyard-verification=tok123" in c.reason


def test_failed_lookup_is_unknown_and_blocks() -> None:
    result = check(dkim=LookupResult(LookupStatus.FAILED, detail="SERVFAIL"))
    c = result.by_kind(RecordKind.DKIM)
    assert c.status is RecordStatus.UNKNOWN
    assert "try again" in c.reason
    assert not result.verified


def test_settings_need_an_spf_source() -> None:
    with pytest.raises(ValueError, match="SPF"):
        SendingDomainSettings("example.com", "s", KEY.public_txt, "t", "mx.example")


def test_records_are_frozen() -> None:
    record: DnsRecord = RECORDS[0]
    with pytest.raises(AttributeError):
        record.value = "x"  # type: ignore[misc]
