"""Service-level issuance: certificates per second per core through the whole use case
(validate → sign → describe → store in SQLite), as ``CreateClientCertificate`` runs it minus HTTP.

Run pinned to one core::

    taskset -c 1 .venv/bin/python bench/issuance_bench.py [--seconds 3] [--repeats 5]

Figures are operations per CPU-second of this process (median of the repeats), so other load on
the machine slows the run but hardly the figures. SQLite runs in WAL mode on a temp directory;
fsync behaviour is the store's default (synchronous=NORMAL in WAL: durable at checkpoints).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from certgate import bootstrap
from certgate.pki import KeyType, generate_private_key
from certgate.services import accounts, certificates, sites
from certgate.settings import ControlPlaneSettings


def _csr(key_type: KeyType) -> str:
    key = generate_private_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-0001")])
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


def rate(work: Callable[[], object], seconds: float, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        n = 0
        start = time.process_time()
        while time.process_time() - start < seconds:
            work()
            n += 1
        runs.append(n / (time.process_time() - start))
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = bootstrap.initialize(ControlPlaneSettings(data_dir=Path(tmp)))
        new = accounts.create_account(ctx, "bench")
        site = sites.create_site(
            ctx,
            new.account.id,
            name="example.com",
            access_type="NS",
            coverage="global",
            instance_id=new.account.instance_id,
        )
        acct = new.account.id
        cases: list[tuple[str, str, Callable[[], object]]] = []
        for label, kt in (("ECDSA P-256", KeyType.ECDSA_P256), ("RSA-2048", KeyType.RSA2048)):
            wire = "ECDSA" if kt is KeyType.ECDSA_P256 else "RSA"
            csr = _csr(kt)
            cases.append(
                (
                    label,
                    "server-made key",
                    lambda w=wire: certificates.issue_client_certificate(
                        ctx, acct, site.id, validity_days=365, key_type=w
                    ),
                )
            )
            cases.append(
                (
                    label,
                    "CSR",
                    lambda c=csr: certificates.issue_client_certificate(
                        ctx, acct, site.id, validity_days=365, csr_pem=c
                    ),
                )
            )
        print("| client key | path | certificates/s per core (median) |")
        print("|---|---|---:|")
        for label, path, work in cases:
            slow = label == "RSA-2048" and path == "server-made key"  # key generation dominates
            secs = args.seconds * 2 if slow else args.seconds
            print(f"| {label} | {path} | {rate(work, secs, args.repeats):,.0f} |", flush=True)
        ctx.store.close()


if __name__ == "__main__":
    main()
