from __future__ import annotations

import pytest

from appliance.domain.email_address import (
    Address,
    AddressProblem,
    InvalidAddressError,
    is_valid_address,
    normalize_address,
    parse_address,
)


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("alice@example.com", "alice@example.com"),
        ("Alice.Smith@Example.COM", "Alice.Smith@example.com"),
        ("a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"),
        ("o'brien@example.com", "o'brien@example.com"),
        ("x!#$%&'*+/=?^_`{|}~-@example.com", "x!#$%&'*+/=?^_`{|}~-@example.com"),
        ('"john doe"@example.com', '"john doe"@example.com'),
        ('"a@b"@example.com', '"a@b"@example.com'),
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("user@BÜCHER.example", "user@xn--bcher-kva.example"),
        ("jörg@example.com", "jörg@example.com"),
        ("user@xn--bcher-kva.example", "user@xn--bcher-kva.example"),
        ("user@my-host.example", "user@my-host.example"),
    ],
)
def test_valid_addresses_normalize_domain_only(text: str, normal: str) -> None:
    assert normalize_address(text) == normal
    assert is_valid_address(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plainaddress",
        "@example.com",
        "user@",
        "Alice <alice@example.com>",
        "<alice@example.com>",
        " alice@example.com",
        "alice@example.com ",
        "al ice@example.com",
        "alice..smith@example.com",
        ".alice@example.com",
        "alice.@example.com",
        "alice@localhost",
        "alice@example..com",
        "alice@.example.com",
        "alice@example.com.",
        "alice@-example.com",
        "alice@example-.com",
        "alice@exa_mple.com",
        "alice@[192.0.2.1]",
        "alice@192.0.2.1",
        "alice(comment)@example.com",
        "alice@example.com\r\nBcc: x@example.com",
        '"unterminated@example.com',
        "a" * 65 + "@example.com",
        "alice@" + "a" * 64 + ".com",
    ],
)
def test_refuses_what_is_not_an_addr_spec(text: str) -> None:
    with pytest.raises(InvalidAddressError) as info:
        parse_address(text)
    assert info.value.problem is AddressProblem.SYNTAX
    assert not is_valid_address(text)


def test_address_over_320_octets_is_too_long_not_bad_syntax() -> None:
    text = "a@" + ".".join(["b" * 60] * 6) + ".com"
    assert len(text) > 320
    with pytest.raises(InvalidAddressError) as info:
        parse_address(text)
    assert info.value.problem is AddressProblem.TOO_LONG


def test_key_compares_mailboxes_case_blind() -> None:
    assert parse_address("Ann@Example.com").key == parse_address("ann@EXAMPLE.COM").key
    assert parse_address("Ann@Example.com") == Address("Ann", "example.com")
    assert str(parse_address("Ann@Example.com")) == "Ann@example.com"
