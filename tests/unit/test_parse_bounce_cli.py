"""``postyard parse-bounce FILE...`` as scripts run it: a real process, one JSON line per file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.domain.bounce_report import parse_bounce

POSTYARD = [sys.executable, "-m", "appliance.cli"]
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "bounces" / "messages"
CONTRACT_KEYS = [
    "file",
    "kind",
    "recipient",
    "status",
    "action",
    "diagnostic_code",
    "reporting_mta",
    "original_message_id",
]
KINDS = {"hard", "soft", "block", "complaint", "delayed", "not_a_bounce"}

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="bounce corpus not present")

DSN = b"""\
From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>
To: bounces+msg_01jab3cdefghjkmnpqrstvwxyz@bounces.example.com
Subject: Delivery Status Notification (Failure)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@example.net
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.net>: User unknown

--b1
Content-Type: text/rfc822-headers

Message-ID: <msg_01jab3cdefghjkmnpqrstvwxyz@example.com>
From: sender@example.com
To: gone@example.net

--b1--
"""


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*POSTYARD, "parse-bounce", *args], input=stdin, capture_output=True, timeout=60
    )


def _lines(out: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.decode().splitlines()]


def test_one_line_per_file_in_the_contract_shape(tmp_path: Path) -> None:
    dsn = tmp_path / "dsn.eml"
    dsn.write_bytes(DSN)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\xff not mail at all")

    result = _run(str(dsn), str(garbage))

    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    first, second = _lines(result.stdout)
    assert list(first) == CONTRACT_KEYS
    # The parser gives the MTA's name with or without its "dns;" type.
    assert first.pop("reporting_mta") in ("mx.example.net", "dns; mx.example.net")
    assert first == {
        "file": str(dsn),
        "kind": "hard",
        "recipient": "gone@example.net",
        "status": "5.1.1",
        "action": "failed",
        "diagnostic_code": "smtp; 550 5.1.1 <gone@example.net>: User unknown",
        "original_message_id": "msg_01jab3cdefghjkmnpqrstvwxyz@example.com",
    }
    assert second == {"file": str(garbage), "kind": "not_a_bounce"} | {
        key: None for key in CONTRACT_KEYS[2:]
    }


def test_unreadable_file_is_reported_on_stderr_and_the_others_still_printed(
    tmp_path: Path,
) -> None:
    dsn = tmp_path / "dsn.eml"
    dsn.write_bytes(DSN)
    missing = tmp_path / "missing.eml"

    result = _run(str(missing), str(dsn), str(tmp_path))

    assert result.returncode == 1
    assert [line["file"] for line in _lines(result.stdout)] == [str(dsn)]
    errors = result.stderr.decode().splitlines()
    assert len(errors) == 2
    assert f"cannot read {missing}" in errors[0]
    assert f"cannot read {tmp_path}" in errors[1]


def test_dash_reads_standard_input() -> None:
    result = _run("-", stdin=DSN)
    assert result.returncode == 0, result.stderr
    (line,) = _lines(result.stdout)
    assert line["file"] == "-"
    assert line["kind"] == "hard"


def test_help_says_which_recipient_a_multi_recipient_report_describes() -> None:
    result = subprocess.run(
        [*POSTYARD, "parse-bounce", "--help"], capture_output=True, timeout=60, check=True
    )
    assert b"first failed one" in result.stdout


def test_needs_at_least_one_file() -> None:
    result = _run()
    assert result.returncode == 2
    assert b"FILE" in result.stderr


@needs_corpus
def test_corpus_files_print_what_the_parser_returns() -> None:
    files = sorted(CORPUS.rglob("*.eml"))[::12]
    assert files

    result = _run(*map(str, files))

    assert result.returncode == 0, result.stderr
    lines = _lines(result.stdout)
    assert [line["file"] for line in lines] == [str(f) for f in files]
    for path, line in zip(files, lines, strict=True):
        assert list(line) == CONTRACT_KEYS
        assert line["kind"] in KINDS
        assert line == parse_bounce(path.read_bytes()).to_json_dict(str(path))


@needs_corpus
def test_corpus_complaint_and_text_bounce() -> None:
    arf = CORPUS / "sisimai" / "arf-12.eml"
    qmail = CORPUS / "sisimai" / "lhost-qmail-13.eml"

    result = _run(str(arf), str(qmail))

    assert result.returncode == 0, result.stderr
    complaint, bounce = _lines(result.stdout)
    assert complaint["kind"] == "complaint"
    assert complaint["recipient"] == "user@example.com"
    assert bounce["kind"] == "hard"
    assert bounce["recipient"] == "nekochan@cx.libsisimai.com"
    assert bounce["status"] == "5.1.2"
