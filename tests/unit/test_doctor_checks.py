"""The verdicts and wording of ``postyard doctor`` (appliance.domain.doctor_checks)."""

from __future__ import annotations

import errno
import json

from appliance.domain.doctor_checks import (
    Check,
    Verdict,
    bind_verdict,
    certificate_verdict,
    exit_code,
    fcrdns_verdict,
    schema_verdict,
)


def test_bind_verdicts_say_what_to_fix() -> None:
    assert bind_verdict("inbound_listen", "0.0.0.0:25", None).verdict is Verdict.OK
    denied = bind_verdict("inbound_listen", "0.0.0.0:25", errno.EACCES, "Permission denied")
    assert denied.verdict is Verdict.FAIL and "CAP_NET_BIND_SERVICE" in denied.fix
    in_use = bind_verdict("submission_listen", "0.0.0.0:587", errno.EADDRINUSE)
    assert "in use" in in_use.detail and "submission_listen" in in_use.fix


def test_fcrdns_needs_the_ptr_name_to_resolve_back() -> None:
    ok = fcrdns_verdict("192.0.2.1", ["mail.example.com"], {"mail.example.com": ["192.0.2.1"]})
    assert ok.verdict is Verdict.OK
    elsewhere = fcrdns_verdict(
        "192.0.2.1", ["mail.example.com"], {"mail.example.com": ["192.0.2.9"]}
    )
    assert elsewhere.verdict is Verdict.FAIL and "192.0.2.9" in elsewhere.detail
    none = fcrdns_verdict("192.0.2.1", None, {}, "NXDOMAIN")
    assert none.verdict is Verdict.FAIL and "no PTR" in none.detail
    v6 = fcrdns_verdict("2001:db8::1", ["m.example"], {"m.example": ["2001:0db8:0::1"]})
    assert v6.verdict is Verdict.OK


def test_schema_and_certificate_verdicts() -> None:
    assert schema_verdict("0004", "0004").verdict is Verdict.OK
    assert schema_verdict(None, "0004").verdict is Verdict.FAIL
    assert schema_verdict("0003", "0004").verdict is Verdict.WARN
    assert certificate_verdict("").verdict is Verdict.WARN
    soon = certificate_verdict("c.pem", not_after=1000 + 86400 * 3, now=1000, key_matches=True)
    assert soon.verdict is Verdict.WARN and "3 days" in soon.detail
    gone = certificate_verdict("c.pem", not_after=999, now=1000, key_matches=True)
    assert gone.verdict is Verdict.FAIL


def test_exit_code_and_output_forms() -> None:
    warn = Check("x", Verdict.WARN, "meh", "do y")
    fail = Check("z", Verdict.FAIL, "bad")
    assert exit_code([warn]) == 0 and exit_code([warn, fail]) == 1
    assert warn.line() == "WARN  x: meh -- fix: do y"
    assert json.loads(fail.to_json()) == {
        "check": "z",
        "verdict": "FAIL",
        "detail": "bad",
        "fix": None,
    }
