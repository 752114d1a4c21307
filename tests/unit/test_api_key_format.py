from __future__ import annotations

from appliance.domain.api_key_format import ApiKeySecret, secret_matches


def test_generated_key_has_sendgrid_shape_and_length() -> None:
    key = ApiKeySecret.generate()
    assert key.token.startswith("SG.")
    assert len(key.token) == 69
    assert ApiKeySecret.parse(key.token) == key


def test_keys_are_unique() -> None:
    assert len({ApiKeySecret.generate().token for _ in range(200)}) == 200


def test_hash_verifies_only_the_right_secret() -> None:
    key = ApiKeySecret.generate()
    other = ApiKeySecret.generate()
    assert secret_matches(key.secret, key.secret_hash())
    assert not secret_matches(other.secret, key.secret_hash())


def test_malformed_keys_are_rejected() -> None:
    for text in ["", "SG.", "SG.abc.def", "xx.aaaaaaaaaaaaaaaaaaaaaa." + "b" * 43, "Bearer x"]:
        assert ApiKeySecret.parse(text) is None
