"""Verdicts and output of ``postyard doctor``: pure functions, no I/O.

``appliance/services/doctor.py`` gathers the facts (binds, DNS answers, files)
and hands them here; this module decides OK / WARN / FAIL and words what to fix.
"""

from __future__ import annotations

import errno
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from appliance.domain.dns_records import DomainCheck, RecordStatus
from appliance.domain.oidc import OidcError, OidcFailure


class Verdict(Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, the verdict, and what to do."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.verdict.value:<4}  {self.name}: {self.detail}"
        return f"{text} -- fix: {self.fix}" if self.fix else text

    def to_json(self) -> str:
        return json.dumps(
            {
                "check": self.name,
                "verdict": self.verdict.value,
                "detail": self.detail,
                "fix": self.fix or None,
            }
        )


def exit_code(checks: Iterable[Check]) -> int:
    """0 when nothing FAILs (warnings allowed), 1 otherwise."""
    return 1 if any(c.verdict is Verdict.FAIL for c in checks) else 0


# ---------------------------------------------------------------- store


def schema_verdict(current: str | None, head: str | None) -> Check:
    name = "database schema"
    if current == head:
        return Check(name, Verdict.OK, f"at the newest revision ({head})")
    if current is None:
        return Check(
            name,
            Verdict.FAIL,
            "the database has no Postyard schema",
            "run `postyard migrate` (or `postyard serve`, which migrates on start)",
        )
    return Check(
        name,
        Verdict.WARN,
        f"at revision {current}, this version expects {head}",
        "run `postyard backup DEST` then `postyard migrate` (serve migrates on start); if the "
        "database is newer than this binary, upgrade the binary",
    )


# ---------------------------------------------------------------- listeners


def bind_verdict(key: str, address: str, err: int | None, message: str = "") -> Check:
    """The outcome of trying to bind ``address`` (``err`` is the errno, None = bound)."""
    name = f"listen {key}"
    if err is None:
        return Check(name, Verdict.OK, f"{address} can be bound")
    if err == errno.EADDRINUSE:
        return Check(
            name,
            Verdict.FAIL,
            f"{address} is in use by another process",
            f"stop it (see `ss -ltnp 'sport = :{address.rsplit(':', 1)[-1]}'`) or change {key}; "
            "if Postyard itself is running, this is expected",
        )
    if err in (errno.EACCES, errno.EPERM):
        return Check(
            name,
            Verdict.FAIL,
            f"permission denied binding {address}",
            "ports below 1024 need root or CAP_NET_BIND_SERVICE "
            "(AmbientCapabilities=CAP_NET_BIND_SERVICE in assets/postyard.service)",
        )
    if err == errno.EADDRNOTAVAIL:
        return Check(
            name,
            Verdict.FAIL,
            f"{address}: no such local address",
            f"set {key} to an address of this host, or 0.0.0.0",
        )
    return Check(name, Verdict.FAIL, f"cannot bind {address}: {message}", f"check {key}")


# ---------------------------------------------------------------- DNS


def domain_verdicts(result: DomainCheck) -> list[Check]:
    """One line per record of a sending domain, from the shared verification result."""
    out = []
    for c in result.checks:
        name = f"dns {result.domain} {c.record.kind.value}"
        if c.status is RecordStatus.FOUND:
            note = f" ({'; '.join(c.notes)})" if c.notes else ""
            out.append(Check(name, Verdict.OK, f"{c.record.host} {c.record.type} found{note}"))
            continue
        publish = f"publish {c.record.host} {c.record.type} {c.record.value!r}"
        if c.status is RecordStatus.UNKNOWN:
            out.append(Check(name, Verdict.WARN, c.reason, "try again; check dns_nameservers"))
        elif c.record.required:
            out.append(Check(name, Verdict.FAIL, c.reason, publish))
        else:
            out.append(Check(name, Verdict.WARN, c.reason, publish))
    return out


def fcrdns_verdict(
    ip: str,
    ptr_names: Sequence[str] | None,
    forward: Mapping[str, Sequence[str]],
    ptr_error: str = "",
) -> Check:
    """Forward-confirmed reverse DNS: ``ip`` has a PTR whose name resolves back to ``ip``.

    ``ptr_names`` None means the PTR lookup failed; ``forward`` maps each PTR name
    to the addresses it resolves to."""
    name = f"reverse dns {ip}"
    if ptr_names is None or not ptr_names:
        return Check(
            name,
            Verdict.FAIL,
            f"{ip} has no PTR record{f' ({ptr_error})' if ptr_error else ''}; many receivers "
            "reject or spam-folder mail from such addresses",
            f"ask whoever owns {ip} (hosting provider) to set its PTR to this node's hostname, "
            "and give that name an A/AAAA record pointing to the address",
        )
    want = ipaddress.ip_address(ip)
    for ptr in ptr_names:
        if any(_same(want, a) for a in forward.get(ptr, ())):
            return Check(name, Verdict.OK, f"{ip} -> {ptr} -> {ip} (forward-confirmed)")
    shown = ", ".join(f"{p} -> {', '.join(forward.get(p, ())) or 'nothing'}" for p in ptr_names)
    return Check(
        name,
        Verdict.FAIL,
        f"PTR of {ip} does not resolve back to it ({shown})",
        f"give {ptr_names[0]} an A/AAAA record for {ip}, or change the PTR to a name that has one",
    )


def _same(want: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    try:
        return ipaddress.ip_address(text) == want
    except ValueError:
        return False


# ---------------------------------------------------------------- TLS


def certificate_verdict(
    path: str,
    *,
    problem: str = "",
    not_after: float | None = None,
    now: float = 0.0,
    key_matches: bool | None = None,
    warn_days: float = 14,
) -> Check:
    """``problem`` is a reason the file could not be used (missing, unparsable)."""
    name = "tls certificate"
    if not path:
        return Check(
            name,
            Verdict.WARN,
            "tls_cert_file is not set: STARTTLS is not offered on ports 25 and 587",
            "set tls_cert_file and tls_key_file to a PEM certificate and key",
        )
    if problem:
        return Check(name, Verdict.FAIL, f"{path}: {problem}", "fix tls_cert_file/tls_key_file")
    if not_after is not None and not_after <= now:
        return Check(name, Verdict.FAIL, f"{path} has expired", "renew the certificate")
    if key_matches is False:
        return Check(
            name,
            Verdict.FAIL,
            f"tls_key_file is not the private key of {path}",
            "point tls_key_file at the key the certificate was issued for",
        )
    days = ((not_after or now) - now) / 86400
    if not_after is not None and days < warn_days:
        return Check(name, Verdict.WARN, f"{path} expires in {days:.0f} days", "renew it")
    return Check(name, Verdict.OK, f"{path} is valid for {days:.0f} more days")


# ---------------------------------------------------------------- OpenID Connect


def oidc_verdict(step: str, error: OidcError | None, detail: str = "") -> Check:
    """One step of reaching the OpenID Connect provider: ``discovery``, ``jwks`` or
    ``redirect_uri`` (``error`` None: it worked, ``detail`` says what was seen)."""
    name = f"oidc {step}"
    if error is None:
        return Check(name, Verdict.OK, detail)
    if step == "redirect_uri" and error.reason is not OidcFailure.REDIRECT_URI:
        # The provider's answer is not clearly about the redirect URI: cannot tell.
        return Check(name, Verdict.WARN, error.message, error.hint)
    return Check(name, Verdict.FAIL, error.message, error.hint)


def oidc_jwks_verdict(url: str, kids: Sequence[str]) -> Check:
    if not kids:
        return Check(
            "oidc jwks",
            Verdict.FAIL,
            f"{url} serves no keys with a kid",
            "check the provider's signing keys; ID tokens cannot be validated without them",
        )
    return Check("oidc jwks", Verdict.OK, f"{url} serves {len(kids)} key(s): {', '.join(kids)}")
