"""Domain verification end to end: our Resolver against the test DNS server on 127.0.0.1."""

from __future__ import annotations

import pytest

from appliance.domain.dkim_keys import generate_key_pair
from appliance.domain.dns_records import (
    DomainCheck,
    RecordKind,
    RecordStatus,
    SendingDomainSettings,
    check_records,
    lookups_needed,
    records_to_publish,
)
from appliance.net.dns import DnsConfigError, DnsStatus, Resolver, parse_nameserver
from tests.support.dns_fixtures import dns_resolver, dns_server  # noqa: F401
from tests.support.dns_server import DnsServer, txt, txt_split

KEY = generate_key_pair(selector="py20260512a3f9")
P = KEY.public_txt.split("p=", 1)[1]
SETTINGS = SendingDomainSettings(
    domain="shop.test",
    dkim_selector=KEY.selector,
    dkim_public_txt=KEY.public_txt,
    ownership_token="tok123",
    bounce_mx_host="mx.postyard.test",
    spf_includes=("_spf.postyard.test",),
    spf_ip4=("127.0.0.1",),
)
RECORDS = records_to_publish(SETTINGS)
DKIM_HOST = f"{KEY.selector}._domainkey.shop.test"


def publish_good(server: DnsServer) -> None:
    """The records exactly as a careful operator publishes them (DKIM as 2 strings)."""
    server.zones.update(
        {
            "shop.test": {
                "TXT": [txt("v=spf1 include:_spf.postyard.test ip4:127.0.0.1 ~all")],
                "MX": ["10 mail.shop.test."],
            },
            "_postyard.shop.test": {"TXT": txt("postyard-verification=tok123")},
            DKIM_HOST: {"TXT": txt_split(KEY.public_txt)},
            "bounces.shop.test": {
                "MX": "10 mx.postyard.test.",
                "TXT": txt("v=spf1 include:_spf.postyard.test ip4:127.0.0.1 -all"),
            },
            "_dmarc.shop.test": {"TXT": txt("v=DMARC1; p=none")},
        }
    )


async def verify(resolver: Resolver) -> DomainCheck:
    answers = await resolver.lookup_records(lookups_needed(RECORDS))
    return check_records("shop.test", RECORDS, answers)


async def test_good_domain_verifies_with_all_records_found(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    publish_good(dns_server)
    result = await verify(dns_resolver)
    assert result.verified, [c.reason for c in result.problems]
    assert {c.status for c in result.checks} == {RecordStatus.FOUND}


async def test_dkim_record_split_into_many_small_strings_is_joined_without_spaces(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    publish_good(dns_server)
    dns_server.zones.set(DKIM_HOST, "TXT", txt_split(KEY.public_txt, 37))
    assert (await verify(dns_resolver)).by_kind(RecordKind.DKIM).status is RecordStatus.FOUND


@pytest.mark.parametrize(
    ("dkim_rdata", "status", "phrase"),
    [
        (None, RecordStatus.MISSING, "No TXT record holding the DKIM key"),
        (txt(KEY.public_txt[:255]), RecordStatus.WRONG, "truncated"),
        (txt_split(f"k=rsa; p={P}"), RecordStatus.WRONG, "does not start with v=DKIM1"),
        (
            txt_split(f"v=DKIM1; k=rsa; p={P[:90]}{'A' if P[90] != 'A' else 'B'}{P[91:]}"),
            RecordStatus.WRONG,
            "at character 91",
        ),
        (txt_split(f"v=DKIM1; k=rsa; p={P[:90]}{P[91:]}"), RecordStatus.WRONG, "base64"),
        (
            txt(f'"{KEY.public_txt[:200]}" "', f'{KEY.public_txt[200:]}"'),
            RecordStatus.WRONG,
            "quote characters",
        ),
        (
            txt("v=DKIM1; k=rsa; p=" + P[:150] + " ", P[150:]),
            RecordStatus.FOUND,
            "Published correctly",
        ),
        (
            txt("v=DKIM1; k=rsa; p=" + P[:150] + "\r\n", P[150:]),
            RecordStatus.FOUND,
            "Published correctly",
        ),
    ],
    ids=[
        "missing",
        "truncated",
        "no-v-tag",
        "typo",
        "bad-base64",
        "literal-quotes",
        "provider-added-space",
        "line-break",
    ],
)
async def test_broken_dkim_record_is_reported_with_what_to_fix(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
    dkim_rdata: str | None,
    status: RecordStatus,
    phrase: str,
) -> None:
    publish_good(dns_server)
    if dkim_rdata is None:
        dns_server.zones.delete(DKIM_HOST)
    else:
        dns_server.zones.set(DKIM_HOST, "TXT", dkim_rdata)
    result = await verify(dns_resolver)
    check = result.by_kind(RecordKind.DKIM)
    assert check.status is status, check.reason
    assert phrase in check.reason
    assert result.verified is (status is RecordStatus.FOUND)


async def test_dkim_published_as_cname_to_operator_host_is_found(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    publish_good(dns_server)
    dns_server.zones.delete(DKIM_HOST)
    dns_server.zones.set(DKIM_HOST, "CNAME", "shop.dkim.postyard.test.")
    dns_server.zones.set("shop.dkim.postyard.test", "TXT", txt_split(KEY.public_txt))
    assert (await verify(dns_resolver)).verified


async def test_two_spf_records_at_apex_fail_verification(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    publish_good(dns_server)
    dns_server.zones.add("shop.test", "TXT", txt("v=spf1 include:_spf.google.com ~all"))
    result = await verify(dns_resolver)
    check = result.by_kind(RecordKind.SPF)
    assert not result.verified
    assert check.status is RecordStatus.WRONG
    assert "2 SPF records" in check.reason
    assert "include:_spf.google.com" in check.reason
    assert "include:_spf.postyard.test" in check.reason


async def test_spf_without_our_include_fails_verification(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    publish_good(dns_server)
    dns_server.zones.set("shop.test", "TXT", txt("v=spf1 mx -all"))
    check = (await verify(dns_resolver)).by_kind(RecordKind.SPF)
    assert check.status is RecordStatus.WRONG
    assert "add include:_spf.postyard.test ip4:127.0.0.1" in check.reason


async def test_dmarc_absent_is_only_a_warning(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    publish_good(dns_server)
    dns_server.zones.delete("_dmarc.shop.test")
    result = await verify(dns_resolver)
    assert result.verified
    assert [c.record.kind for c in result.warnings] == [RecordKind.DMARC]


async def test_return_path_mx_pointing_elsewhere_fails_verification(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    publish_good(dns_server)
    dns_server.zones.set("bounces.shop.test", "MX", "10 mail.shop.test.")
    check = (await verify(dns_resolver)).by_kind(RecordKind.RETURN_PATH_MX)
    assert check.status is RecordStatus.WRONG
    assert "points to mail.shop.test" in check.reason


async def test_servfail_makes_records_unknown_not_missing(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    publish_good(dns_server)
    dns_server.servfail.add(DKIM_HOST)
    check = (await verify(dns_resolver)).by_kind(RecordKind.DKIM)
    assert check.status is RecordStatus.UNKNOWN
    assert "try again" in check.reason


async def test_fixed_record_is_seen_at_once_on_the_next_verification(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    publish_good(dns_server)
    dns_server.zones.set(DKIM_HOST, "TXT", txt(KEY.public_txt[:255]))
    assert not (await verify(dns_resolver)).verified
    dns_server.zones.set(DKIM_HOST, "TXT", txt_split(KEY.public_txt))
    assert (await verify(dns_resolver)).verified


# The resolver adapter on its own -------------------------------------------


async def test_mx_distinguishes_found_nxdomain_nodata_and_null_mx(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    dns_server.zones.update(
        {
            "mail.test": {"MX": ["20 b.mail.test.", "10 a.mail.test."]},
            "nomx.test": {"A": "127.0.0.1"},
            "null.test": {"MX": "0 ."},
        }
    )
    found = await dns_resolver.mx("mail.test")
    assert found.status is DnsStatus.FOUND
    assert found.values == ((10, "a.mail.test"), (20, "b.mail.test"))
    assert (await dns_resolver.mx("missing.test")).status is DnsStatus.NXDOMAIN
    assert (await dns_resolver.mx("nomx.test")).status is DnsStatus.NODATA
    null = await dns_resolver.mx("null.test")
    assert null.status is DnsStatus.NULL_MX
    assert null.status.is_permanent


async def test_timeout_and_servfail_are_temporary_failures(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    dns_server.servfail.add("broken.test")
    dns_server.drop.add("silent.test")
    for name in ("broken.test", "silent.test"):
        result = await dns_resolver.mx(name)
        assert result.status is DnsStatus.TEMPFAIL
        assert not result.status.is_permanent
        assert name in result.reason


async def test_multi_string_txt_strings_concatenate_without_spaces_records_stay_apart(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    dns_server.zones.set("t.test", "TXT", txt("v=spf1 ip4:127.0.0.1", " -all"), txt("other"))
    result = await dns_resolver.txt("t.test")
    assert sorted(result.values) == ["other", "v=spf1 ip4:127.0.0.1 -all"]


async def test_large_answer_is_truncated_over_udp_and_retried_over_tcp(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    big = [txt(f"record {i} " + "x" * 240) for i in range(6)]
    dns_server.zones.set("big.test", "TXT", *big)
    result = await dns_resolver.txt("big.test")
    assert len(result.values) == 6
    transports = [t for t, name, _ in dns_server.queries if name == "big.test"]
    assert transports == ["udp", "tcp"]


async def test_a_aaaa_ptr_and_cname(
    dns_server: DnsServer,  # noqa: F811
    dns_resolver: Resolver,  # noqa: F811
) -> None:
    dns_server.zones.update(
        {
            "host.test": {"A": "127.0.0.5", "AAAA": "::1"},
            "alias.test": {"CNAME": "host.test."},
            "v4only.test": {"A": "127.0.0.6"},
            "5.0.0.127.in-addr.arpa": {"PTR": "host.test."},
        }
    )
    assert (await dns_resolver.a_aaaa("alias.test")).values == ("127.0.0.5", "::1")
    assert (await dns_resolver.a_aaaa("v4only.test")).values == ("127.0.0.6",)
    assert (await dns_resolver.a_aaaa("nowhere.test")).status is DnsStatus.NXDOMAIN
    assert (await dns_resolver.ptr("127.0.0.5")).values == ("host.test",)
    assert (await dns_resolver.ptr("127.0.0.9")).status is DnsStatus.NXDOMAIN


async def test_zone_text_is_served(dns_resolver: Resolver, dns_server: DnsServer) -> None:  # noqa: F811
    from tests.support.dns_server import Zones

    dns_server.zones = Zones.from_text(
        '$TTL 60\n@ IN MX 5 mx\nmx IN A 127.0.0.7\n@ IN TXT "a" "b"\n', "zone.test."
    )
    assert (await dns_resolver.mx("zone.test")).values == ((5, "mx.zone.test"),)
    assert (await dns_resolver.txt("zone.test")).values == ("ab",)


def test_nameserver_configuration_is_parsed_and_checked() -> None:
    ns = parse_nameserver("127.0.0.1:5353")
    assert (ns.address, ns.port) == ("127.0.0.1", 5353)
    assert parse_nameserver("[::1]:53").address == "::1"
    assert parse_nameserver("9.9.9.9").port == 53
    for bad in ("dns.example:53", "127.0.0.1:0", "[::1"):
        with pytest.raises(DnsConfigError):
            parse_nameserver(bad)
    with pytest.raises(DnsConfigError):
        Resolver([])
