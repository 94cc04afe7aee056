"""Service-level issuance: certificates per second per core through the whole use case, as
``CreateClientCertificate`` runs it minus HTTP: validate → sign (the CA returns the new
certificate's facts) → store (one unit of work: writer lock, site and managed-CA lookups, insert,
per-site count, version bump, commit).

Run pinned to one core (results and commands: ``bench/ISSUANCE.md``)::

    taskset -c 1 .venv/bin/python bench/issuance_bench.py [--seconds 2] [--repeats 5]
        [--sqlite-synchronous FULL|NORMAL|OFF] [--database-url postgresql://...]
        [--threads N] [--sqlite-group-commit N]

Each case runs ``--repeats`` times, the cases interleaved round by round so that a change in the
machine's load hits them all alike; each run lasts ``--seconds`` of CPU time. Figures are medians:

- **per CPU-second**: certificates / CPU time of this process (user + kernel, so the fsync work
  the kernel does for SQLite's commit counts): the "per core" figure of the goal, hardly moved by
  other processes sharing the core;
- **wall-clock**: certificates / elapsed time of the same runs, one thread, waits included
  (fsync, other processes on the core);
- **PKI core alone**: the same signing (and CSR parsing) without the service and the store,
  interleaved with the service runs, so the service's share is visible under any machine load;
- **floor** (SQLite only, ECDSA with a server-made key): what no framework can beat on this machine:
  the PKI core, both PEMs and the fingerprint, then one hand-written ``sqlite3`` transaction of the
  same shape on the same database (``BEGIN IMMEDIATE``, the two lookups, the insert, the count,
  the version bump, ``COMMIT`` with the same ``synchronous``), no model objects, no describe.

The store is SQLite in a temporary directory with the default ``synchronous=FULL`` (every commit
is durable), unless ``--sqlite-synchronous`` says otherwise (a comparison, never the default) or
``--database-url`` names another database (e.g. the test PostgreSQL).

``--threads N`` (N > 1) runs the service cases from N threads at once (as N concurrent API
requests would; still one core under ``taskset``), so that SQLite's group commit can carry
several issuances per ``fdatasync``; ``--sqlite-group-commit 0`` turns grouping off for
comparison (``SQLStore``'s ``sqlite_group_commit``, default 32). The service rows then also
say how many issuances each commit carried on average.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import os
import platform
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cryptography
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from certgate import bootstrap
from certgate.pki import CertificateAuthority, KeyType, generate_private_key, load_csr
from certgate.pki.keys import private_key_to_pem
from certgate.services import accounts, certificates, sites
from certgate.services.context import ServiceContext
from certgate.settings import ControlPlaneSettings
from certgate.storage import SQLStore


@dataclasses.dataclass
class Runs:
    rates_cpu: list[float] = dataclasses.field(default_factory=list)
    rates_wall: list[float] = dataclasses.field(default_factory=list)
    kernel_share: list[float] = dataclasses.field(default_factory=list)
    counts: list[int] = dataclasses.field(default_factory=list)

    def add(self, count: int, cpu: float, kernel: float, wall: float) -> None:
        self.counts.append(count)
        self.rates_cpu.append(count / cpu)
        self.rates_wall.append(count / wall)
        self.kernel_share.append(kernel / cpu)


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


def run_threads(work: Callable[[], object], seconds: float, runs: Runs, threads: int) -> None:
    """``run_once`` with ``threads`` threads calling ``work`` concurrently."""
    counts = [0] * threads
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        try:
            while not stop.is_set():
                work()
                counts[i] += 1
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    start, start_wall = os.times(), time.perf_counter()
    deadline = time.process_time() + seconds
    for worker in workers:
        worker.start()
    while time.process_time() < deadline and not stop.is_set():
        time.sleep(0.005)
    stop.set()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    end, wall = os.times(), time.perf_counter() - start_wall
    user, kernel = end.user - start.user, end.system - start.system
    runs.add(sum(counts), user + kernel, kernel, wall)


def run_once(work: Callable[[], object], seconds: float, runs: Runs) -> None:
    """Repeat ``work`` for about ``seconds`` of this process's CPU time; record the rates."""
    count = 0
    start, start_wall = os.times(), time.perf_counter()
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        work()
        count += 1
    end, wall = os.times(), time.perf_counter() - start_wall
    user, kernel = end.user - start.user, end.system - start.system
    runs.add(count, user + kernel, kernel, wall)


def raw_sqlite_floor(
    db_path: str, synchronous: str, ca: CertificateAuthority, acct: str, site_id: int, authority_id: str
) -> tuple[Callable[[], object], Callable[[], None]]:
    """The floor's unit of work (module docstring) and a function that closes its connection."""
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    for pragma in ("busy_timeout = 30000", "foreign_keys = ON", f"synchronous = {synchronous}"):
        conn.execute(f"PRAGMA {pragma}")
    issuer_dn = ca.certificate.subject.rfc4514_string()
    issuer_cn = str(ca.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    insert = (
        "INSERT INTO client_certificates (id, account_id, site_id, authority_id, status, validity_days, "
        "certificate_pem, common_name, subject_dn, issuer_dn, issuer_common_name, serial_hex, "
        "fingerprint_sha256, signature_algorithm, public_key_algorithm, san, not_before, not_after, "
        "created_at, updated_at, revoked_at) VALUES (" + ", ".join("?" * 21) + ") ON CONFLICT DO NOTHING"
    )

    def work() -> object:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        cert_id = os.urandom(16).hex()
        issued = ca.issue_client_certificate(
            now=now, validity_days=365, key_type=KeyType.ECDSA_P256, common_name=cert_id
        )
        assert issued.private_key is not None
        key_pem = private_key_to_pem(issued.private_key)
        cert = issued.certificate
        der = cert.public_bytes(serialization.Encoding.DER)
        stamp = now.replace(tzinfo=None).isoformat(" ") + ".000000"
        row = (
            cert_id, acct, site_id, authority_id, "active", 365,
            cert.public_bytes(serialization.Encoding.PEM).decode(), cert_id, f"CN={cert_id}", issuer_dn,
            issuer_cn, format(cert.serial_number, "x"), hashlib.sha256(der).hexdigest(), "ECDSA-SHA256",
            "ECDSA", "", str(cert.not_valid_before_utc.replace(tzinfo=None)) + ".000000",
            str(cert.not_valid_after_utc.replace(tzinfo=None)) + ".000000", stamp, stamp, None,
        )  # fmt: skip
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        cur.execute("SELECT * FROM sites WHERE id = ? AND account_id = ?", (site_id, acct)).fetchone()
        cur.execute(
            "SELECT * FROM authorities WHERE kind = 'managed' AND account_id = ? "
            "ORDER BY created_at DESC, id DESC LIMIT 1",
            (acct,),
        ).fetchone()
        cur.execute(insert, row)
        cur.execute(
            "INSERT INTO client_certificate_counts (site_id, total) VALUES (?, 1) "
            "ON CONFLICT (site_id) DO UPDATE SET total = client_certificate_counts.total + 1",
            (site_id,),
        )
        cur.execute("UPDATE installation SET config_version = config_version + 1 WHERE id = 1 RETURNING 1")
        cur.fetchone()
        conn.commit()
        cur.close()
        return key_pem

    return work, conn.close


def open_context(tmp: Path, args: argparse.Namespace) -> ServiceContext:
    settings = ControlPlaneSettings(data_dir=tmp, database_url=args.database_url)
    ctx = bootstrap.initialize(settings)
    if (args.sqlite_synchronous or args.sqlite_group_commit is not None) and not args.database_url:
        ctx.store.close()
        store = SQLStore(
            settings.resolved_database_url,
            sqlite_synchronous=args.sqlite_synchronous or "FULL",
            sqlite_group_commit=32 if args.sqlite_group_commit is None else args.sqlite_group_commit,
        )
        ctx = dataclasses.replace(ctx, store=store)
    return ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU-seconds per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per case; medians are reported")
    parser.add_argument("--sqlite-synchronous", choices=["FULL", "NORMAL", "OFF"], default=None)
    parser.add_argument(
        "--database-url", default=None, help="another database (default: SQLite in a temp dir)"
    )
    parser.add_argument("--only-ecdsa", action="store_true", help="skip the RSA cases")
    parser.add_argument("--threads", type=int, default=1, help="concurrent callers of the service cases")
    parser.add_argument(
        "--sqlite-group-commit", type=int, default=None, help="most issuances per SQLite commit (0: off)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context(Path(tmp), args)
        new = accounts.create_account(ctx, f"bench-{os.getpid()}")
        site = sites.create_site(
            ctx,
            new.account.id,
            name=f"bench-{os.getpid()}.example.com",
            access_type="NS",
            coverage="global",
            instance_id=new.account.instance_id,
        )
        acct, site_id = new.account.id, site.id
        with ctx.store.read_transaction() as tx:
            authority_id, ca = certificates._managed_authority(ctx, tx, acct)  # the unsealed, cached CA
        now = ctx.clock.now()
        floor: Callable[[], object] | None = None
        close_floor: Callable[[], None] = lambda: None  # noqa: E731
        if not args.database_url:
            floor, close_floor = raw_sqlite_floor(
                str(Path(tmp) / "certgate.db"),
                args.sqlite_synchronous or "FULL",
                ca,
                acct,
                site_id,
                authority_id,
            )

        cases: list[tuple[str, str, Callable[[], object], Callable[[], object]]] = []
        key_types = [KeyType.ECDSA_P256] if args.only_ecdsa else [KeyType.ECDSA_P256, KeyType.RSA2048]
        for kt in key_types:
            label = "ECDSA P-256" if kt is KeyType.ECDSA_P256 else "RSA-2048"
            wire = "ECDSA" if kt is KeyType.ECDSA_P256 else "RSA"
            csr = _csr(kt)

            def service_key(w: str = wire) -> object:
                return certificates.issue_client_certificate(
                    ctx, acct, site_id, validity_days=365, key_type=w
                )

            def core_key(k: KeyType = kt) -> object:
                issued = ca.issue_client_certificate(
                    now=now, validity_days=365, key_type=k, common_name="x" * 32
                )
                assert issued.private_key is not None
                return private_key_to_pem(issued.private_key)

            def service_csr(c: str = csr) -> object:
                return certificates.issue_client_certificate(ctx, acct, site_id, validity_days=365, csr_pem=c)

            def core_csr(c: str = csr) -> object:
                return ca.issue_client_certificate(now=now, validity_days=365, csr=load_csr(c))

            cases.append((label, "server-made key", service_key, core_key))
            cases.append((label, "CSR", service_csr, core_csr))

        for _, _, service, core in cases:  # warm up: statement caches, CA cache, imports
            service()
            core()
        results = {(label, path): (Runs(), Runs()) for label, path, _, _ in cases}
        floor_runs = Runs()
        load_before = os.getloadavg()
        writers = getattr(ctx.store, "_writers", None)
        per_commit: dict[tuple[str, str], list[float]] = {key: [] for key in results}
        for _ in range(args.repeats):
            for label, path, service, core in cases:
                service_runs, core_runs = results[(label, path)]
                commits = writers.commits if writers is not None else 0
                if args.threads > 1:
                    run_threads(service, args.seconds, service_runs, args.threads)
                else:
                    run_once(service, args.seconds, service_runs)
                if writers is not None and writers.commits > commits:
                    per_commit[(label, path)].append(service_runs.counts[-1] / (writers.commits - commits))
                run_once(core, args.seconds, core_runs)
            if floor is not None:
                run_once(floor, args.seconds, floor_runs)
        load_after = os.getloadavg()
        close_floor()
        store_name = args.database_url.split("://")[0] if args.database_url else "SQLite"
        sync = args.sqlite_synchronous or "FULL (default)"
        grouping = "off" if writers is None else f"up to {writers.limit} per commit"
        ctx.store.close()

    print(
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.machine()}, affinity {sorted(os.sched_getaffinity(0))}; "
        f"store {store_name}"
        + (f", synchronous={sync}, group commit {grouping}" if store_name == "SQLite" else "")
        + "; "
        f"service cases from {args.threads} thread(s); "
        f"medians of {args.repeats} runs x {args.seconds:g} CPU-s; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n"
    )
    print(
        "| client key | path | service: certs/s per CPU-second | µs CPU per cert (kernel share) "
        "| service: certs/s wall-clock | PKI core alone: certs/s per CPU-second |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for (label, path), (service_runs, core_runs) in results.items():
        cpu_rate = statistics.median(service_runs.rates_cpu)
        print(
            f"| {label} | {path} | {cpu_rate:,.0f} | {1e6 / cpu_rate:,.0f} "
            f"({statistics.median(service_runs.kernel_share):.0%}) "
            f"| {statistics.median(service_runs.rates_wall):,.0f} "
            f"| {statistics.median(core_runs.rates_cpu):,.0f} |"
            + (
                f" {statistics.median(per_commit[(label, path)]):.1f} issuances per commit"
                if per_commit[(label, path)]
                else ""
            )
        )
    if floor_runs.rates_cpu:
        rate = statistics.median(floor_runs.rates_cpu)
        kernel = statistics.median(floor_runs.kernel_share)
        print(
            f"| ECDSA P-256 | floor: PKI core + raw sqlite3 transaction | {rate:,.0f} | {1e6 / rate:,.0f} "
            f"({kernel:.0%}) | {statistics.median(floor_runs.rates_wall):,.0f} | |"
        )


if __name__ == "__main__":
    main()
