"""The DNS records a sending domain publishes, and checking what DNS really says.

Pure: :func:`records_to_publish` turns a domain's settings into the exact
records (type, host, value, purpose); :func:`check_records` compares the
answers looked up (by ``appliance.net.dns``) with them and says, for each
record, found / missing / wrong / unknown and what to fix.

Records, for ``example.com`` with selector ``py20260512a3f9``:

============  =====  ================================  ==============================
kind          type   host                              value
============  =====  ================================  ==============================
ownership     TXT    _postyard.example.com             postyard-verification=<token>
dkim          TXT    py20260512a3f9._domainkey.…       v=DKIM1; k=rsa; p=…
spf           TXT    example.com                       v=spf1 include:… ~all
return-path   MX     bounces.example.com               10 <bounce MX host>
return-path   TXT    bounces.example.com               v=spf1 include:… -all
dmarc         TXT    _dmarc.example.com                v=DMARC1; p=none; …  (recommended)
============  =====  ================================  ==============================

Mail leaves with envelope sender ``bounces+<id>@bounces.example.com``: the
MX routes DSNs to Postyard, and its SPF record is the one receivers check
(it aligns with ``example.com`` under DMARC's relaxed alignment). The apex
SPF record covers mail sent with the apex as envelope domain.

CNAME setups (``<selector>._domainkey`` or ``bounces`` pointing at records
the operator hosts) need nothing special: the resolver follows CNAMEs, so
the answers checked here are those of the target.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

OWNERSHIP_LABEL = "_postyard"
OWNERSHIP_PREFIX = "postyard-verification="
DEFAULT_RETURN_PATH_LABEL = "bounces"
TXT_STRING_MAX = 255  # RFC 1035 §3.3: one character-string holds at most 255 octets

_BASE64_RE = re.compile(r"[^A-Za-z0-9+/=]")
_WS_RE = re.compile(r"\s+")


class RecordKind(Enum):
    OWNERSHIP = "ownership"
    DKIM = "dkim"
    SPF = "spf"
    RETURN_PATH_MX = "return_path_mx"
    RETURN_PATH_SPF = "return_path_spf"
    DMARC = "dmarc"


class RecordStatus(Enum):
    FOUND = "found"
    MISSING = "missing"
    WRONG = "wrong"
    UNKNOWN = "unknown"  # the lookup failed (timeout, SERVFAIL): try again later


class LookupStatus(Enum):
    """What a DNS lookup returned, as far as the checker cares."""

    FOUND = "found"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class LookupResult:
    """One lookup's answer: TXT records (each record's strings concatenated,
    RFC 7208 §3.3) or MX records as ``"<preference> <host>"``."""

    status: LookupStatus
    values: tuple[str, ...] = ()
    detail: str = ""


LookupKey = tuple[str, str]  # (host name without trailing dot, lowercased; "TXT" | "MX")


@dataclass(frozen=True, slots=True)
class SendingDomainSettings:
    domain: str
    dkim_selector: str
    dkim_public_txt: str
    ownership_token: str
    bounce_mx_host: str
    spf_includes: tuple[str, ...] = ()
    spf_ip4: tuple[str, ...] = ()
    spf_ip6: tuple[str, ...] = ()
    return_path_label: str = DEFAULT_RETURN_PATH_LABEL
    dmarc_rua: str | None = None

    def __post_init__(self) -> None:
        if not (self.spf_includes or self.spf_ip4 or self.spf_ip6):
            raise ValueError("SPF needs at least one include, ip4 or ip6 of our outbound mail")
        for ip in self.spf_ip4:
            ipaddress.IPv4Network(ip, strict=False)
        for ip in self.spf_ip6:
            ipaddress.IPv6Network(ip, strict=False)
        if not self.dkim_public_txt.startswith("v=DKIM1;"):
            raise ValueError("dkim_public_txt must be the full TXT value, v=DKIM1; k=…; p=…")


@dataclass(frozen=True, slots=True)
class DnsRecord:
    kind: RecordKind
    type: str  # "TXT" or "MX"
    host: str  # fully qualified, no trailing dot
    value: str  # TXT: the text; MX: the exchange host (no trailing dot)
    purpose: str
    required: bool = True
    priority: int | None = None  # MX preference

    @property
    def key(self) -> LookupKey:
        return (_norm(self.host), self.type)

    def txt_strings(self) -> tuple[str, ...]:
        """The value cut into ≤255-character strings, as one TXT record carries it."""
        v = self.value
        return tuple(v[i : i + TXT_STRING_MAX] for i in range(0, len(v), TXT_STRING_MAX)) or ("",)

    def zone_line(self, ttl: int = 3600) -> str:
        """The record in zone-file syntax, e.g. for ``postyard doctor`` or a BIND user."""
        if self.type == "MX":
            return f"{self.host}. {ttl} IN MX {self.priority} {self.value}."
        quoted = " ".join(f'"{s}"' for s in self.txt_strings())
        return f"{self.host}. {ttl} IN TXT {quoted}"


@dataclass(frozen=True, slots=True)
class RecordCheck:
    record: DnsRecord
    status: RecordStatus
    reason: str  # what happened and what to do, one or two sentences
    seen: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # advice that does not block verification

    @property
    def blocking(self) -> bool:
        return self.record.required and self.status is not RecordStatus.FOUND


@dataclass(frozen=True, slots=True)
class DomainCheck:
    domain: str
    checks: tuple[RecordCheck, ...] = field(default_factory=tuple)

    @property
    def verified(self) -> bool:
        return not any(c.blocking for c in self.checks)

    @property
    def problems(self) -> tuple[RecordCheck, ...]:
        return tuple(c for c in self.checks if c.blocking)

    @property
    def warnings(self) -> tuple[RecordCheck, ...]:
        found = RecordStatus.FOUND
        return tuple(c for c in self.checks if not c.blocking and c.status is not found)

    def by_kind(self, kind: RecordKind) -> RecordCheck:
        return next(c for c in self.checks if c.record.kind is kind)


# ---------------------------------------------------------------- records


def records_to_publish(s: SendingDomainSettings) -> tuple[DnsRecord, ...]:
    domain = _norm(s.domain)
    return_path = f"{s.return_path_label}.{domain}"
    ours = [f"include:{i}" for i in s.spf_includes]
    ours += [f"ip4:{ip}" for ip in s.spf_ip4] + [f"ip6:{ip}" for ip in s.spf_ip6]
    dmarc = "v=DMARC1; p=none" + (f"; rua=mailto:{s.dmarc_rua}" if s.dmarc_rua else "")
    return (
        DnsRecord(
            RecordKind.OWNERSHIP,
            "TXT",
            f"{OWNERSHIP_LABEL}.{domain}",
            f"{OWNERSHIP_PREFIX}{s.ownership_token}",
            f"proves that you control {domain}",
        ),
        DnsRecord(
            RecordKind.DKIM,
            "TXT",
            f"{s.dkim_selector}._domainkey.{domain}",
            s.dkim_public_txt,
            f"public key receivers use to check Postyard's DKIM signatures for {domain}",
        ),
        DnsRecord(
            RecordKind.SPF,
            "TXT",
            domain,
            " ".join(["v=spf1", *ours, "~all"]),
            f"authorizes Postyard's outbound addresses to send mail for {domain}",
        ),
        DnsRecord(
            RecordKind.RETURN_PATH_MX,
            "MX",
            return_path,
            _norm(s.bounce_mx_host),
            f"routes bounces for the envelope sender bounces+…@{return_path} to Postyard",
            priority=10,
        ),
        DnsRecord(
            RecordKind.RETURN_PATH_SPF,
            "TXT",
            return_path,
            " ".join(["v=spf1", *ours, "-all"]),
            f"SPF for the envelope sender domain {return_path}, aligned with {domain}",
        ),
        DnsRecord(
            RecordKind.DMARC,
            "TXT",
            f"_dmarc.{domain}",
            dmarc,
            "tells receivers what to do with mail failing SPF and DKIM; start with p=none",
            required=False,
        ),
    )


def lookups_needed(records: Iterable[DnsRecord]) -> tuple[LookupKey, ...]:
    return tuple(dict.fromkeys(r.key for r in records))


# ---------------------------------------------------------------- checking


def check_records(
    domain: str, records: Sequence[DnsRecord], answers: Mapping[LookupKey, LookupResult]
) -> DomainCheck:
    checks = []
    for record in records:
        result = answers.get(record.key)
        if result is None:
            raise KeyError(f"no lookup result for {record.key}; use lookups_needed(records)")
        checks.append(_check_one(record, result))
    return DomainCheck(_norm(domain), tuple(checks))


def _check_one(record: DnsRecord, result: LookupResult) -> RecordCheck:
    if result.status is LookupStatus.FAILED:
        return RecordCheck(
            record,
            RecordStatus.UNKNOWN,
            f"Could not look up {record.type} records at {record.host} "
            f"({result.detail or 'no answer'}). This is usually temporary; try again "
            "in a few minutes.",
        )
    checker = {
        RecordKind.OWNERSHIP: _check_ownership,
        RecordKind.DKIM: _check_dkim,
        RecordKind.SPF: _check_spf,
        RecordKind.RETURN_PATH_SPF: _check_spf,
        RecordKind.RETURN_PATH_MX: _check_mx,
        RecordKind.DMARC: _check_dmarc,
    }[record.kind]
    return checker(record, result.values)


def _missing(record: DnsRecord, seen: tuple[str, ...], extra: str = "") -> RecordCheck:
    what = f"MX {record.priority} {record.value}" if record.type == "MX" else record.value
    return RecordCheck(
        record,
        RecordStatus.MISSING,
        f"No {record.type} record{extra} at {record.host}. Publish: {what}",
        seen,
    )


def _wrong(record: DnsRecord, seen: tuple[str, ...], reason: str, *notes: str) -> RecordCheck:
    return RecordCheck(record, RecordStatus.WRONG, reason, seen, notes)


def _found(record: DnsRecord, seen: tuple[str, ...], *notes: str) -> RecordCheck:
    return RecordCheck(record, RecordStatus.FOUND, "Published correctly.", seen, notes)


def _check_ownership(record: DnsRecord, seen: tuple[str, ...]) -> RecordCheck:
    cleaned = [v.strip().strip('"').strip() for v in seen]
    if record.value in cleaned:
        return _found(record, seen)
    if any(v.startswith(OWNERSHIP_PREFIX) for v in cleaned):
        return _wrong(
            record,
            seen,
            f"The verification token at {record.host} is not the current one. "
            f"Replace it with: {record.value}",
        )
    return _missing(record, seen, " with the verification token")


# DKIM ---------------------------------------------------------------------


def _check_dkim(record: DnsRecord, seen: tuple[str, ...]) -> RecordCheck:
    host, want = record.host, _tags(record.value)
    keys = [v for v in seen if "p=" in v or "DKIM1" in v.upper()]
    if not keys:
        extra = f" (found only unrelated TXT: {seen[0][:60]!r})" if seen else ""
        return _missing(record, seen, f" holding the DKIM key{extra}")
    if len(keys) > 1:
        return _wrong(
            record,
            seen,
            f"{len(keys)} DKIM key records at {host}; receivers may pick any of them. "
            f"Keep exactly one TXT record with: {record.value}",
        )
    value = keys[0]
    notes: list[str] = []
    if value != value.strip():
        notes.append("The value has leading or trailing whitespace; harmless, but trim it.")
    if '"' in value:
        return _wrong(
            record,
            seen,
            f"The TXT value at {host} contains quote characters, so your DNS provider stored "
            'the quotes as text (typical when zone-file syntax like "part1" "part2" is '
            "pasted into a web form). Enter the value without any quotes; the provider splits "
            "long values itself.",
        )
    if "\\" in value:
        return _wrong(
            record,
            seen,
            f"The TXT value at {host} contains a backslash (an escaped line break or semicolon "
            "pasted as text). Paste the value again as one line, without backslashes.",
        )
    tags = _tags(value)
    names = list(tags)
    if "v" not in tags:
        return _wrong(
            record,
            seen,
            f"The record at {host} does not start with v=DKIM1 (often the beginning was cut "
            f"off when copying). Publish the whole value: {record.value}",
        )
    if names[0] != "v" or tags["v"] != "DKIM1":
        return _wrong(
            record,
            seen,
            f"The record at {host} must begin with exactly v=DKIM1 (found "
            f"v={tags['v']} as tag {names.index('v') + 1}). Publish: {record.value}",
        )
    if tags.get("k", "rsa") != want["k"]:
        return _wrong(
            record,
            seen,
            f"The record at {host} declares k={tags.get('k', 'rsa')} but the key Postyard "
            f"signs with is k={want['k']}. Publish: {record.value}",
        )
    if "p" not in tags:
        return _wrong(
            record,
            seen,
            f"The record at {host} has no p= tag (the public key). Publish: {record.value}",
        )
    p = _WS_RE.sub("", tags["p"])
    if not p:
        return _wrong(
            record, seen, f"p= is empty at {host}, which revokes the key. Publish: {record.value}"
        )
    if p != tags["p"]:
        notes.append(
            "The p= value contains spaces or line breaks. RFC 6376 allows them and most "
            "receivers ignore them, but remove them to be safe."
        )
    if p == want["p"]:
        return _found(record, seen, *notes)
    return _wrong(record, seen, _diagnose_key(host, p, want["p"]), *notes)


def _diagnose_key(host: str, got: str, want: str) -> str:
    bad = _BASE64_RE.search(got)
    if bad:
        return (
            f"The p= value at {host} contains {bad.group()!r} at character {bad.start() + 1}, "
            "which is not base64. Copy the key again from Postyard."
        )
    if want.startswith(got):
        return (
            f"The p= value at {host} is truncated: {len(got)} of {len(want)} characters, "
            f"ending '…{got[-8:]}' where the key continues '{want[len(got) : len(got) + 8]}…'. "
            "Paste the whole value; long values may be split into several strings, not cut."
        )
    if got.startswith(want):
        return (
            f"The p= value at {host} has {len(got) - len(want)} extra characters at the end "
            f"('{got[len(want) :][:12]}'). Remove them."
        )
    try:
        base64.b64decode(got, validate=True)
    except binascii.Error:
        return (
            f"The p= value at {host} is not valid base64 ({len(got)} characters, a key "
            "is never cut like this): characters are missing or were added. Copy it again."
        )
    diffs = [i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b]
    if len(got) == len(want) and len(diffs) <= 3:
        i = diffs[0]
        return (
            f"The p= value at {host} differs from Postyard's key at character {i + 1} "
            f"(found '{got[i : i + 6]}…', expected '{want[i : i + 6]}…'), a copy-paste error. "
            "Copy the value again."
        )
    return (
        f"The p= value at {host} is a different key (from an earlier rotation or another "
        "service). Replace it with the current value from Postyard."
    )


def _tags(value: str) -> dict[str, str]:
    """Tag=value list (RFC 6376 §3.2), tolerant: first occurrence wins."""
    tags: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, val = part.partition("=")
        if sep and name.strip() and name.strip() not in tags:
            tags[name.strip()] = val.strip()
    return tags


# SPF ----------------------------------------------------------------------


def _is_spf(value: str) -> bool:
    v = value.strip().lower()
    return v == "v=spf1" or v.startswith("v=spf1 ")


def _check_spf(record: DnsRecord, seen: tuple[str, ...]) -> RecordCheck:
    host = record.host
    ours = record.value.split()[1:-1]
    spf = [v for v in seen if _is_spf(v)]
    if not spf:
        if any("spf1" in v.lower() for v in seen):
            return _wrong(
                record,
                seen,
                f"A TXT record at {host} mentions spf1 but does not start with v=spf1, so "
                f"receivers ignore it. Publish: {record.value}",
            )
        return _missing(record, seen, " for SPF")
    if len(spf) > 1:
        return _wrong(
            record,
            seen,
            f"{len(spf)} SPF records at {host}. RFC 7208 §4.5 makes that a permanent error, "
            "so receivers treat SPF as failing for all your mail. Merge them into one record "
            f"and delete the others: {_merge_spf(spf, ours)}",
        )
    terms = spf[0].split()[1:]
    missing = [t for t in ours if not _spf_has(terms, t)]
    if missing:
        return _wrong(
            record,
            seen,
            f"The SPF record at {host} does not authorize Postyard: add "
            f"{' '.join(missing)} before the 'all' term, giving: {_merge_spf(spf, ours)}",
        )
    notes = []
    if "+all" in terms or "all" in terms:
        notes.append("The SPF record ends in +all, which lets anyone send as you; use ~all.")
    return _found(record, seen, *notes)


def _spf_has(terms: list[str], wanted: str) -> bool:
    """Is ``wanted`` (include:x / ip4:net / ip6:net) effective before any ``all``?"""
    kind, _, arg = wanted.partition(":")
    for term in terms:
        t = term.lower().removeprefix("+")
        if t.lstrip("-~?") == "all":
            return False  # terms after all are never evaluated
        tkind, _, targ = t.partition(":")
        if tkind != kind:
            continue
        if kind == "include" and targ.rstrip(".") == arg.lower().rstrip("."):
            return True
        if kind in ("ip4", "ip6") and _covers(targ, arg):
            return True
    return False


def _covers(mechanism_net: str, wanted_net: str) -> bool:
    try:
        outer = ipaddress.ip_network(mechanism_net, strict=False)
        inner = ipaddress.ip_network(wanted_net, strict=False)
    except ValueError:
        return False
    if isinstance(outer, ipaddress.IPv4Network) and isinstance(inner, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(outer, ipaddress.IPv6Network) and isinstance(inner, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


def _merge_spf(records: list[str], ours: list[str]) -> str:
    """One SPF record holding every mechanism of ``records`` plus ours, before one 'all'."""
    terms: list[str] = []
    final: str | None = None  # the first record's 'all' term wins
    for rec in records:
        for term in rec.split()[1:]:
            if term.lower().lstrip("+-~?") == "all":
                final = final or term
            elif term not in terms:
                terms.append(term)
    terms += [t for t in ours if not _spf_has(terms, t)]
    return " ".join(["v=spf1", *terms, final or "~all"])


# MX -----------------------------------------------------------------------


def _check_mx(record: DnsRecord, seen: tuple[str, ...]) -> RecordCheck:
    mx = []
    for v in seen:
        pref, _, host = v.partition(" ")
        mx.append((int(pref), _norm(host)))
    if not mx:
        return _missing(record, seen)
    if any(h in ("", ".") for _, h in mx):
        return _wrong(
            record,
            seen,
            f"{record.host} publishes a null MX (0 .), declaring that it accepts no mail, so "
            f"bounces cannot reach Postyard. Replace it with: MX {record.priority} {record.value}",
        )
    ours = [p for p, h in mx if h == record.value]
    if not ours:
        return _wrong(
            record,
            seen,
            f"The MX of {record.host} points to {', '.join(h for _, h in mx)}, not "
            f"{record.value}, so bounces would not reach Postyard. "
            f"Publish: MX {record.priority} {record.value}",
        )
    better = [h for p, h in mx if p < min(ours)]
    if better:
        return _wrong(
            record,
            seen,
            f"{', '.join(better)} has a lower preference number than {record.value} at "
            f"{record.host}, so bounces go there first. Remove it or give {record.value} "
            "the lowest number.",
        )
    return _found(record, seen)


# DMARC --------------------------------------------------------------------


def _check_dmarc(record: DnsRecord, seen: tuple[str, ...]) -> RecordCheck:
    dmarc = [v for v in seen if v.strip().startswith("v=DMARC1")]
    if not dmarc:
        if any("dmarc1" in v.lower() for v in seen):
            return _wrong(
                record,
                seen,
                f"The record at {record.host} must start with exactly v=DMARC1 (upper case, "
                f"first tag); receivers ignore it otherwise. For example: {record.value}",
            )
        return RecordCheck(
            record,
            RecordStatus.MISSING,
            f"No DMARC record at {record.host} (recommended, not required: Gmail and Yahoo "
            f"expect one from bulk senders). Start with: {record.value}",
            seen,
        )
    if len(dmarc) > 1:
        return _wrong(
            record,
            seen,
            f"{len(dmarc)} DMARC records at {record.host}; RFC 7489 §6.6.3 says receivers "
            "then ignore DMARC entirely. Keep one.",
        )
    return _found(record, seen)


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()
