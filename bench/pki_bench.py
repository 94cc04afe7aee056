"""Issuance throughput of the pure PKI core (no storage): certificates per second on one core.

Run pinned to one core, e.g.::

    PYTHONPATH=src taskset -c 1 .venv/bin/python bench/pki_bench.py

Cases: a key pair made by certgate (``PkeyType``) vs a CSR sent by the client (``load_csr`` +
issue, i.e. parse, key policy, signature check, sign), for ECDSA P-256 and RSA-2048 client keys,
all signed by an ECDSA P-256 managed CA (the default). Also times the edge's per-connection
work on a fresh certificate: ``ClientVerifier.verify_der`` and ``describe_certificate``.
Prints markdown tables; each figure is the median of ``--repeats`` runs, in operations per
CPU-second of the benchmark process (so a busy machine slows the run, not the figures much).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable

import cryptography
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from certgate.pki import (
    ClientVerifier,
    KeyType,
    create_certificate_authority,
    describe_certificate,
    generate_private_key,
    load_csr,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)


def _csr_pem(key_type: KeyType) -> str:
    key = generate_private_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-0001")])
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("device-0001.example")]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


def _rate(work: Callable[[], object], seconds: float, repeats: int) -> float:
    """Operations per CPU-second of this process: the median of ``repeats`` runs.

    CPU time, not wall time, so that other processes sharing the core do not distort the
    figure (the figure is "per core"); each run lasts about ``seconds`` of CPU time.
    """
    work()  # warm up
    rates = []
    for _ in range(repeats):
        count = 0
        started = time.process_time()
        deadline = started + seconds
        while True:
            work()
            count += 1
            now = time.process_time()
            if now >= deadline:
                break
        rates.append(count / (now - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of one run per case")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the median is reported")
    parser.add_argument(
        "--ca-key-type", default="ECDSA_P256", choices=[k.value for k in KeyType], help="the issuing CA's key"
    )
    args = parser.parse_args()

    ca_key_type = KeyType(args.ca_key_type)
    ca = create_certificate_authority("bench CA", now=NOW - dt.timedelta(days=1), key_type=ca_key_type)
    csrs = {kt: _csr_pem(kt) for kt in (KeyType.ECDSA_P256, KeyType.RSA2048)}

    def server_made(kt: KeyType) -> Callable[[], object]:
        return lambda: ca.issue_client_certificate(
            now=NOW, validity_days=365, key_type=kt, common_name="bench"
        )

    def from_csr(kt: KeyType) -> Callable[[], object]:
        pem = csrs[kt]
        return lambda: ca.issue_client_certificate(now=NOW, validity_days=365, csr=load_csr(pem))

    cases = [
        ("ECDSA P-256", "server-made key", server_made(KeyType.ECDSA_P256)),
        ("ECDSA P-256", "CSR", from_csr(KeyType.ECDSA_P256)),
        ("RSA-2048", "server-made key", server_made(KeyType.RSA2048)),
        ("RSA-2048", "CSR", from_csr(KeyType.RSA2048)),
    ]
    cpu = platform.processor() or platform.machine()
    print(
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, {cpu}, "
        f"pid {os.getpid()} affinity {sorted(os.sched_getaffinity(0))}; CA key {args.ca_key_type}; "
        f"median of {args.repeats} x {args.seconds:g} CPU-seconds; rates are per CPU-second\n"
    )
    print("| client key | path | certificates/s (one core) | µs per certificate |")
    print("|---|---|---:|---:|")
    for key_name, path, work in cases:
        rate = _rate(work, args.seconds, args.repeats)
        print(f"| {key_name} | {path} | {rate:,.0f} | {1e6 / rate:,.0f} |")

    leaf = ca.issue_client_certificate(
        now=NOW, validity_days=365, key_type=KeyType.ECDSA_P256, common_name="bench"
    ).certificate
    leaf_der = leaf.public_bytes(serialization.Encoding.DER)
    verifier = ClientVerifier([ca.certificate])
    edge_cases = [
        ("ClientVerifier.verify_der (parse + chain to CA)", lambda: verifier.verify_der(leaf_der, now=NOW)),
        ("describe_certificate (rule fields)", lambda: describe_certificate(leaf)),
        ("x509.load_der_x509_certificate alone", lambda: x509.load_der_x509_certificate(leaf_der)),
    ]
    print("\n| edge operation on an ECDSA P-256 leaf | operations/s | µs per operation |")
    print("|---|---:|---:|")
    for label, work in edge_cases:
        rate = _rate(work, args.seconds, args.repeats)
        print(f"| {label} | {rate:,.0f} | {1e6 / rate:,.1f} |")


if __name__ == "__main__":
    main()
