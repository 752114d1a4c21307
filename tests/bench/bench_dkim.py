"""DKIM signatures per second: dkimpy's own RSA, our DkimSigner (RSA via cryptography), Ed25519.

Run: ``.venv/bin/python -m tests.bench.bench_dkim [seconds-per-case]`` from the repository root.
Single thread, a ~1 KB transactional message, relaxed/relaxed, same headers.
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable

import dkim
from cryptography.hazmat.primitives import serialization

from appliance.domain.dkim_keys import DkimAlgorithm, generate_key_pair, load_private_key
from appliance.protocols.dkim_signer import DkimSigner

MESSAGE = (
    b"From: Shop <orders@example.com>\r\n"
    b"To: customer@example.org\r\n"
    b"Subject: Your order #12345 has shipped\r\n"
    b"Date: Sun, 12 May 2024 09:00:00 +0000\r\n"
    b"Message-ID: <msg_0123456789@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"List-Unsubscribe: <https://example.com/t/u/abcdef>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"X-Postyard-Message-Id: msg_0123456789\r\n"
    b"\r\n" + b"Thanks for your order. It is on its way and should arrive soon.\r\n" * 14
)


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    rsa_pair = generate_key_pair(DkimAlgorithm.RSA_SHA256, selector="bench")
    ed_pair = generate_key_pair(DkimAlgorithm.ED25519_SHA256, selector="bench")
    ours_rsa = DkimSigner("example.com", "bench", rsa_pair.private_key_pem)
    ours_ed = DkimSigner("example.com", "bench", ed_pair.private_key_pem)
    include = list(ours_rsa.include_headers(MESSAGE))

    def dkimpy_rsa() -> object:
        return dkim.sign(
            MESSAGE,
            b"bench",
            b"example.com",
            rsa_pair.private_key_pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )

    cases: list[tuple[str, Callable[[], object]]] = [
        ("dkimpy RSA-2048 (pure Python)", dkimpy_rsa),
        ("DkimSigner RSA-2048 (cryptography)", lambda: ours_rsa.sign(MESSAGE)),
        ("DkimSigner Ed25519 (cryptography)", lambda: ours_ed.sign(MESSAGE)),
    ]
    try:
        import nacl.signing  # noqa: F401

        seed = load_private_key(ed_pair.private_key_pem).private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        ed_b64 = base64.b64encode(seed)

        def dkimpy_ed() -> object:
            return dkim.sign(
                MESSAGE,
                b"bench",
                b"example.com",
                ed_b64,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=include,
                signature_algorithm=b"ed25519-sha256",
            )

        cases.append(("dkimpy Ed25519 (PyNaCl)", dkimpy_ed))
    except ImportError:
        pass
    print(f"{len(MESSAGE)}-byte message, {seconds:g}s per case, one thread")
    for name, fn in cases:
        print(f"{name:<38} {rate(fn, seconds):>8,.0f} signatures/s")


if __name__ == "__main__":
    main()
