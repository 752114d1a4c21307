"""Validation of an OpenID Connect ID token against the provider's JWKS (pure, no I/O).

PyJWT verifies the signature with the key the token's ``kid`` names (RS256 or
ES256 only: ``none`` and HMAC are refused, so a public key can never be used
as an HMAC secret); the claims are then checked here against the caller's
clock, so each failure names the values that differ.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from appliance.domain.oidc_errors import OidcError, OidcFailure, json_object

ALLOWED_ALGORITHMS = ("RS256", "ES256")
DEFAULT_LEEWAY = 60.0


@dataclass(frozen=True, slots=True)
class IdTokenClaims:
    subject: str
    email: str
    name: str
    groups: tuple[str, ...]
    email_verified: bool | None = None  # None: the provider did not say


def key_ids(jwks_json: Mapping[str, Any] | str | bytes) -> tuple[str, ...]:
    """The ``kid`` of each key of a JWKS (for logs and the doctor)."""
    doc = json_object(jwks_json)
    keys = doc.get("keys") if doc is not None else None
    if not isinstance(keys, list):
        return ()
    return tuple(str(k["kid"]) for k in keys if isinstance(k, dict) and "kid" in k)


def _keys_for(jwks_json: Mapping[str, Any] | str | bytes, alg: str) -> list[jwt.PyJWK]:
    doc = json_object(jwks_json)
    keys = doc.get("keys") if doc is not None else None
    if not isinstance(keys, list):
        raise OidcError(
            "the provider's JWKS is not a JSON object with a keys list",
            "check jwks_uri in the provider's discovery document",
            reason=OidcFailure.INVALID_TOKEN,
        )
    usable = [k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig"]
    try:
        jwk_set = jwt.PyJWKSet(usable)
    except jwt.PyJWKSetError:
        return []
    return [k for k in jwk_set.keys if k.algorithm_name == alg]


def validate_id_token(
    id_token: str,
    jwks_json: Mapping[str, Any] | str | bytes,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: float,
    leeway: float = DEFAULT_LEEWAY,
    groups_claim: str = "groups",
) -> IdTokenClaims:
    """The claims of a valid ID token; an ``OidcError`` that says what is wrong otherwise.

    ``reason`` is ``UNKNOWN_KID`` when no key of the JWKS has the token's ``kid``
    (the caller fetches the JWKS again, once: the provider may have rotated keys)."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.DecodeError as exc:
        raise _invalid(f"the ID token is not a signed JWT ({exc})") from None
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        shown = "an unsigned (alg none)" if str(alg).lower() == "none" else f"an {alg!r}"
        raise _invalid(
            f"the provider sent {shown} ID token; only RS256 and ES256 are accepted",
            "configure the client at the provider to sign ID tokens with RS256 (or ES256)",
        )
    kid = header.get("kid")
    keys = _keys_for(jwks_json, alg)
    if kid is not None:
        keys = [k for k in keys if k.key_id == kid]
        if not keys:
            raise OidcError(
                f"no {alg} key with kid {kid!r} in the provider's JWKS",
                "the provider may have rotated its keys; try again, and if it repeats check "
                "that oidc_issuer is the provider that issued the token",
                reason=OidcFailure.UNKNOWN_KID,
            )
    elif not keys:
        raise OidcError(
            f"the provider's JWKS has no {alg} key",
            "check the signing keys of the provider",
            reason=OidcFailure.UNKNOWN_KID,
        )
    claims = _verified_payload(id_token, keys, alg, kid)
    _check_claims(claims, issuer=issuer, client_id=client_id, nonce=nonce, now=now, leeway=leeway)
    return _claims(claims, groups_claim)


def _invalid(message: str, hint: str = "") -> OidcError:
    return OidcError(
        message,
        hint or "start the login again; if it repeats, the provider's configuration is wrong",
        reason=OidcFailure.INVALID_TOKEN,
    )


def _verified_payload(
    token: str, keys: Sequence[jwt.PyJWK], alg: str, kid: object
) -> dict[str, Any]:
    for key in keys:
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                options={
                    "verify_signature": True,
                    "verify_aud": False,  # checked below, with messages that name the values
                    "verify_iss": False,
                    "verify_exp": False,  # checked below against the caller's clock
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "aud", "sub", "exp", "iat"],
                },
            )
            return payload
        except jwt.InvalidSignatureError:
            continue
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"the ID token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise _invalid(f"the ID token cannot be decoded ({exc})") from None
    which = f"kid {kid!r}" if kid is not None else f"any {alg} key"
    raise _invalid(
        f"the ID token's signature does not verify with the provider's key ({which})",
        "the token was not issued by oidc_issuer, or was altered; start the login again",
    )


def _check_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: float,
    leeway: float,
) -> None:
    if claims["iss"] != issuer:
        raise _invalid(
            f"the ID token was issued by {claims['iss']!r}, not by {issuer!r}",
            "set oidc_issuer to the provider that issues the tokens",
        )
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id not in audiences:
        raise _invalid(
            f"the ID token is for audience {aud!r}, not for oidc_client_id {client_id!r}",
            "set oidc_client_id to the client ID the provider issued to Postyard",
        )
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is not None and azp != client_id:
        raise _invalid(f"the ID token was issued to {azp!r} (azp), not to {client_id!r}")
    for name in ("exp", "iat"):
        if not isinstance(claims[name], (int, float)) or isinstance(claims[name], bool):
            raise _invalid(f"the ID token's {name} claim is not a number")
    clock = "if it repeats, this host's clock or the provider's is off (check NTP)"
    if now > claims["exp"] + leeway:
        raise _invalid(
            f"the ID token expired at {_when(claims['exp'])} (now {_when(now)})",
            f"start the login again; {clock}",
        )
    if claims["iat"] > now + leeway:
        raise _invalid(
            f"the ID token was issued in the future ({_when(claims['iat'])}, now {_when(now)})",
            clock,
        )
    nbf = claims.get("nbf")
    if isinstance(nbf, (int, float)) and nbf > now + leeway:
        raise _invalid(f"the ID token is not valid before {_when(nbf)}", clock)
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise _invalid(
            "the ID token's nonce does not match the login started in this browser",
            "start the login again from the admin UI (a replayed or foreign token ends here)",
        )


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _claims(claims: Mapping[str, Any], groups_claim: str) -> IdTokenClaims:
    email = claims.get("email")
    name = claims.get("name") or claims.get("preferred_username") or ""
    verified = claims.get("email_verified")
    return IdTokenClaims(
        subject=str(claims["sub"]),
        email=email if isinstance(email, str) else "",
        name=name if isinstance(name, str) else "",
        groups=groups_of(claims, groups_claim),
        email_verified=verified if isinstance(verified, bool) else None,
    )


def groups_of(claims: Mapping[str, Any], groups_claim: str) -> tuple[str, ...]:
    """The user's groups: the claim named ``groups_claim``, or a dotted path to it
    (``realm_access.roles``) when no claim has that literal name."""
    value: Any = claims.get(groups_claim)
    if value is None and "." in groups_claim:
        value = claims
        for part in groups_claim.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(g, str) for g in value):
        return tuple(value)
    raise _invalid(
        f"the ID token's {groups_claim!r} claim is not a list of group names",
        "set oidc_groups_claim to the claim that lists the user's groups",
    )
