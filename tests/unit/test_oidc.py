"""The pure OpenID Connect checks: discovery, PKCE, callbacks, ID tokens, roles."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from appliance.config import ConfigError, load_config
from appliance.domain.oidc import (
    AuthorizationRequest,
    OidcError,
    OidcFailure,
    ProviderMetadata,
    authorization_refused,
    callback_code,
    id_token_from_response,
    open_pending,
    provider_error,
    role_for_groups,
    seal_pending,
    start_authorization,
    token_error,
    validate_id_token,
)
from appliance.domain.secret_box import SecretBox

ISSUER = "https://id.example.test/realms/ops"
CLIENT = "postyard-admin"
NONCE = "n-0S6_WzA2Mj"
NOW = 1_800_000_000.0
REDIRECT = "https://mail.example.test/admin/oidc/callback"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(key: Any, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        body = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        body = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**body, "kid": kid, "use": "sig"}


JWKS = {"keys": [_jwk(RSA_KEY, "rsa1"), _jwk(EC_KEY, "ec1")]}


def _claims(**overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "248289761001",
        "email": "ann@example.test",
        "email_verified": True,
        "name": "Ann Operator",
        "groups": ["ops", "everyone"],
        "nonce": NONCE,
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _token(key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "rsa1", **claims: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(_claims(**claims), key, algorithm=alg, headers=headers)


def _validate(token: str, jwks: dict[str, Any] = JWKS, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "issuer": ISSUER,
        "client_id": CLIENT,
        "nonce": NONCE,
        "now": NOW,
        "leeway": 30,
    }
    args.update(kw)
    return validate_id_token(token, jwks, **args)


def _refused(token: str, **kw: Any) -> OidcError:
    with pytest.raises(OidcError) as info:
        _validate(token, **kw)
    return info.value


# ---------------------------------------------------------------- ID tokens


def test_a_good_rs256_token_gives_its_claims() -> None:
    claims = _validate(_token())
    assert claims.subject == "248289761001"
    assert claims.email == "ann@example.test"
    assert claims.name == "Ann Operator"
    assert claims.groups == ("ops", "everyone")
    assert claims.email_verified is True


def test_a_good_es256_token_is_accepted_with_the_key_its_kid_names() -> None:
    assert _validate(_token(EC_KEY, "ES256", "ec1")).subject == "248289761001"


def test_an_expired_token_is_refused_beyond_the_leeway_only() -> None:
    assert _validate(_token(exp=int(NOW) - 20)).subject  # within 30 s of leeway
    err = _refused(_token(exp=int(NOW) - 31))
    assert err.reason is OidcFailure.INVALID_TOKEN
    assert "expired" in err.message and "NTP" in err.hint


def test_a_token_issued_in_the_future_is_refused() -> None:
    err = _refused(_token(iat=int(NOW) + 120))
    assert "future" in err.message


def test_a_token_for_another_audience_is_refused_naming_both() -> None:
    err = _refused(_token(aud="someone-else"))
    assert "someone-else" in err.message and CLIENT in err.message
    assert "oidc_client_id" in err.hint
    assert _validate(_token(aud=["other", CLIENT])).subject  # a list containing ours is fine


def test_a_token_of_another_issuer_is_refused() -> None:
    err = _refused(_token(iss="https://evil.example.test"))
    assert "https://evil.example.test" in err.message and "oidc_issuer" in err.hint


def test_a_wrong_or_missing_nonce_is_refused() -> None:
    assert "nonce" in _refused(_token(nonce="replayed")).message
    assert "nonce" in _refused(_token(nonce=None)).message


def test_a_bad_signature_is_refused() -> None:
    # Signed by another key under the kid of ours.
    err = _refused(_token(OTHER_RSA_KEY, kid="rsa1"))
    assert "signature" in err.message and err.reason is OidcFailure.INVALID_TOKEN
    # Payload altered after signing.
    head, _, sig = _token().split(".")
    forged = base64.urlsafe_b64encode(json.dumps(_claims(sub="admin")).encode()).rstrip(b"=")
    assert "signature" in _refused(f"{head}.{forged.decode()}.{sig}").message


def test_an_unknown_kid_says_so_for_the_caller_to_refetch() -> None:
    err = _refused(_token(kid="rotated"))
    assert err.reason is OidcFailure.UNKNOWN_KID and "'rotated'" in err.message


def test_without_a_kid_the_key_of_the_algorithm_is_used() -> None:
    assert _validate(_token(kid=None)).subject


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(_claims(), None, algorithm="none", headers={"kid": "rsa1"})
    err = _refused(unsigned)
    assert "alg none" in err.message and "RS256" in err.hint


def test_hs256_with_the_public_key_as_secret_is_refused() -> None:
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"rsa1","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=")
    sig = hmac.new(pem, header + b"." + body, hashlib.sha256).digest()
    token = b".".join([header, body, base64.urlsafe_b64encode(sig).rstrip(b"=")]).decode()
    assert "HS256" in _refused(token).message


def test_a_token_without_sub_is_refused() -> None:
    assert "'sub'" in _refused(_token(sub=None)).message


def test_garbage_is_not_a_token() -> None:
    assert "not a signed JWT" in _refused("not-a-jwt").message


def test_groups_come_from_the_configured_claim_or_a_dotted_path() -> None:
    token = _token(groups=None, realm_access={"roles": ["admins"]}, **{"https://x.test/g": "a"})
    assert _validate(token, groups_claim="realm_access.roles").groups == ("admins",)
    assert _validate(token, groups_claim="https://x.test/g").groups == ("a",)
    assert _validate(token).groups == ()
    assert "oidc_groups_claim" in _refused(_token(groups={"x": 1})).hint


# ---------------------------------------------------------------- discovery


def _doc(**overrides: Any) -> dict[str, Any]:
    doc = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/certs",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def test_discovery_document_is_parsed() -> None:
    meta = ProviderMetadata.parse(json.dumps(_doc()), issuer=ISSUER + "/")
    assert meta.jwks_uri == f"{ISSUER}/certs"
    assert meta.token_endpoint_auth_methods == ("client_secret_basic",)


def test_discovery_document_missing_fields_are_named() -> None:
    with pytest.raises(OidcError) as info:
        ProviderMetadata.parse(_doc(jwks_uri=None, token_endpoint=""), issuer=ISSUER)
    assert "token_endpoint, jwks_uri" in info.value.message
    assert f"{ISSUER}/.well-known/openid-configuration" in info.value.message


def test_discovery_document_of_another_issuer_says_which_to_configure() -> None:
    with pytest.raises(OidcError) as info:
        ProviderMetadata.parse(_doc(issuer="https://id.example.test/realms/dev"), issuer=ISSUER)
    assert "realms/dev" in info.value.message and "set oidc_issuer to" in info.value.hint


def test_plain_http_is_only_for_a_loopback_provider() -> None:
    with pytest.raises(OidcError) as info:
        ProviderMetadata.parse(_doc(), issuer="http://id.example.test")
    assert "https" in str(info.value)
    local = "http://127.0.0.1:9000"
    doc = {k: v.replace(ISSUER, local) for k, v in _doc().items()}
    assert ProviderMetadata.parse(doc, issuer=local).issuer == local


def test_not_json_says_to_check_the_issuer() -> None:
    with pytest.raises(OidcError) as info:
        ProviderMetadata.parse(b"<html>login</html>", issuer=ISSUER)
    assert "oidc_issuer" in info.value.hint


# ---------------------------------------------------------------- authorization


def _meta() -> ProviderMetadata:
    return ProviderMetadata.parse(_doc(authorization_endpoint=f"{ISSUER}/auth?kc=1"), issuer=ISSUER)


def test_authorization_url_carries_pkce_s256_state_and_nonce() -> None:
    req = start_authorization(
        _meta(), client_id=CLIENT, redirect_uri=REDIRECT, scopes="email openid groups"
    )
    parts = urlsplit(req.url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path.endswith("/auth") and q["kc"] == "1"
    assert q["response_type"] == "code" and q["client_id"] == CLIENT
    assert q["redirect_uri"] == REDIRECT
    assert q["scope"] == "openid email groups"
    assert q["state"] == req.state and q["nonce"] == req.nonce
    assert q["code_challenge_method"] == "S256"
    digest = hashlib.sha256(req.code_verifier.encode()).digest()
    assert q["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert 43 <= len(req.code_verifier) <= 128
    again = start_authorization(_meta(), client_id=CLIENT, redirect_uri=REDIRECT, scopes=[])
    assert again.state != req.state and again.code_verifier != req.code_verifier
    assert "scope=openid&" in again.url


def test_pending_login_round_trips_and_expires() -> None:
    box = SecretBox([SecretBox.generate_key()])
    req = AuthorizationRequest("u", "st", "no", "ver")
    sealed = seal_pending(box, req, now=NOW, return_to="/admin/messages")
    pending = open_pending(box, sealed, now=NOW + 5)
    assert (pending.state, pending.nonce, pending.code_verifier) == ("st", "no", "ver")
    assert pending.return_to == "/admin/messages"
    for bad in (None, "", sealed[:-4] + "AAAA"):
        with pytest.raises(OidcError) as info:
            open_pending(box, bad, now=NOW)
        assert info.value.reason is OidcFailure.STATE
    with pytest.raises(OidcError, match="longer than 600 s"):
        open_pending(box, sealed, now=NOW + 601)
    other = SecretBox([SecretBox.generate_key()])
    with pytest.raises(OidcError, match="another secret key"):
        open_pending(other, sealed, now=NOW)
    for outside in ("https://evil.test/", "//evil.test/x", "/\\evil.test", "admin"):
        resealed = seal_pending(box, req, now=NOW, return_to=outside)
        assert open_pending(box, resealed, now=NOW).return_to == ""


def test_callback_gives_the_code_only_with_the_state_of_this_login() -> None:
    assert callback_code({"code": "c", "state": "s"}, expected_state="s", redirect_uri=REDIRECT)
    for params in ({"code": "c", "state": "t"}, {"code": "c"}):
        with pytest.raises(OidcError) as info:
            callback_code(params, expected_state="s", redirect_uri=REDIRECT)
        assert info.value.reason is OidcFailure.STATE
    with pytest.raises(OidcError, match="no authorization code"):
        callback_code({"state": "s"}, expected_state="s", redirect_uri=REDIRECT)


def test_callback_error_about_the_redirect_uri_says_what_to_register() -> None:
    params = {
        "error": "invalid_request",
        "error_description": "Invalid parameter: redirect_uri",
        "state": "s",
    }
    with pytest.raises(OidcError) as info:
        callback_code(params, expected_state="s", redirect_uri=REDIRECT)
    err = info.value
    assert err.reason is OidcFailure.REDIRECT_URI
    assert err.message.startswith("invalid redirect_uri")
    assert f"register exactly {REDIRECT}" in err.hint and "ADMIN_URL" in err.hint


def test_callback_access_denied_and_unknown_errors_are_worded() -> None:
    err = provider_error("access_denied", "User cancelled", redirect_uri=REDIRECT)
    assert "access_denied: User cancelled" in err.message and "assign the user" in err.hint
    assert "logs" in provider_error("weird", redirect_uri=REDIRECT).hint


def test_token_endpoint_errors_are_worded() -> None:
    url = f"{ISSUER}/token"
    body = b'{"error": "invalid_grant", "error_description": "Code not valid"}'
    err = token_error(400, body, token_url=url, redirect_uri=REDIRECT)
    assert err.reason is OidcFailure.TOKEN_ENDPOINT
    assert url in err.message and "invalid_grant: Code not valid" in err.message
    assert "start the login again" in err.hint
    mismatch = b'{"error": "invalid_grant", "error_description": "Incorrect redirect_uri"}'
    err = token_error(400, mismatch, token_url=url, redirect_uri=REDIRECT)
    assert err.reason is OidcFailure.REDIRECT_URI and REDIRECT in err.hint
    client = token_error(401, b'{"error": "invalid_client"}', token_url=url, redirect_uri=REDIRECT)
    assert "oidc_client_secret" in client.hint
    html = token_error(502, b"<html>Bad gateway</html>", token_url=url, redirect_uri=REDIRECT)
    assert "answered 502: <html>Bad gateway" in html.message
    with pytest.raises(OidcError, match="no id_token"):
        id_token_from_response(b'{"access_token": "x"}', token_url=url)


def test_an_authorization_page_refusing_the_redirect_uri_is_recognised() -> None:
    err = authorization_refused(400, "<h1>Invalid redirect_uri</h1>", redirect_uri=REDIRECT)
    assert err is not None and err.reason is OidcFailure.REDIRECT_URI
    assert (
        authorization_refused(200, "<form>...redirect_uri...</form>", redirect_uri=REDIRECT) is None
    )
    other = authorization_refused(404, "not found", redirect_uri=REDIRECT)
    assert other is not None and other.reason is OidcFailure.PROVIDER


# ---------------------------------------------------------------- roles and config


def test_first_mapped_group_wins_else_the_default_role() -> None:
    mapping = {"owners": "owner", "ops": "admin", "dev": "developer"}
    assert role_for_groups(["dev", "ops"], mapping, "") == "admin"
    assert role_for_groups(["guests"], mapping, "viewer") == "viewer"
    assert role_for_groups(["guests"], mapping, "") is None
    assert role_for_groups([], {}, "") is None


def test_config_parses_the_role_map_and_the_admin_url() -> None:
    config = load_config(
        environ={
            "POSTYARD_OIDC_ISSUER": ISSUER,
            "POSTYARD_OIDC_CLIENT_ID": CLIENT,
            "POSTYARD_OIDC_ROLE_MAP": "ops=admin, /dev team = developer, cn=viewers=viewer,",
            "ADMIN_URL": "https://mail.example.test/admin",
        }
    )
    assert config.oidc_role_mapping == {
        "ops": "admin",
        "/dev team": "developer",
        "cn=viewers": "viewer",
    }
    assert config.admin_url == "https://mail.example.test/admin/"
    assert config.oidc_redirect_uri == REDIRECT
    assert config.oidc_scopes == "openid email profile groups"
    other = load_config(environ={"POSTYARD_ADMIN_URL": "https://proxy.test/pa/"})
    assert other.admin_url == "https://proxy.test/pa/"
    assert load_config(environ={}).oidc_redirect_uri == "http://127.0.0.1:8080/admin/oidc/callback"


def test_config_refuses_a_bad_role_map_or_a_missing_client_id() -> None:
    with pytest.raises(ConfigError, match="group=role"):
        load_config(environ={"POSTYARD_OIDC_ROLE_MAP": "ops"})
    with pytest.raises(ConfigError, match="twice"):
        load_config(environ={"POSTYARD_OIDC_ROLE_MAP": "ops=admin,ops=viewer"})
    with pytest.raises(ConfigError, match="oidc_client_id"):
        load_config(environ={"POSTYARD_OIDC_ISSUER": ISSUER})
    with pytest.raises(ConfigError, match="ADMIN_URL"):
        load_config(environ={"ADMIN_URL": "mail.example.test/admin"})
