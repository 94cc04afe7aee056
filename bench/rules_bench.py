#!/usr/bin/env python3
"""Benchmark of the rule language: compile time and per-request evaluation.

    .venv/bin/python bench/rules_bench.py            # print the table
    .venv/bin/python bench/rules_bench.py --write    # also write bench/RULES.md

Pins itself to one CPU (os.sched_setaffinity, like `taskset -c N`) and reports the median of
several runs. Per-request evaluation builds a fresh execution context (as the edge does for
every request) over a realistic request and runs every rule in order; the request matches none
of the 100 rules, so all of them are evaluated (the worst case for a request that is allowed).
Goal (issue 3): 100 rules <= 50 µs per request on one core.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from certgate.rules import EDGE_SCHEME, Filter, FilterSet, compile_filter, compile_filters, parse  # noqa: E402

SEED_RULE = '(http.host eq "api.example.com" and not tls.client_auth.cert_verified)'

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
FINGERPRINT = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
PRIVATE = "{10.0.0.0/8 192.168.0.0/16}"
MANAGED_CA = "CN=Example Managed CA,O=Example Corp"

REQUEST: dict[str, object] = {
    "http.host": "api.example.com",
    "http.request.method": "GET",
    "http.request.uri": "/api/v1/users/42/profile?fields=name,email&debug=0",
    "http.request.uri.path": "/api/v1/users/42/profile",
    "http.request.uri.query": "fields=name,email&debug=0",
    "http.request.uri.args": {"fields": ["name,email"], "debug": ["0"]},
    "http.request.full_uri": "https://api.example.com/api/v1/users/42/profile?fields=name,email&debug=0",
    "http.user_agent": UA,
    "http.referer": "https://app.example.com/settings",
    "http.cookie": "session=8f2a9c1e; theme=dark; lang=en",
    "http.request.headers": {
        "host": ["api.example.com"],
        "user-agent": [UA],
        "accept": ["application/json"],
        "accept-encoding": ["gzip, deflate, br"],
        "accept-language": ["en-US,en;q=0.9"],
        "referer": ["https://app.example.com/settings"],
        "cookie": ["session=8f2a9c1e; theme=dark; lang=en"],
        "x-request-id": ["5b0c3f7e-2d9b-4c1a-9f0e-8a7d6c5b4a39"],
        "x-client-id": ["device-42"],
        "connection": ["keep-alive"],
        "sec-fetch-mode": ["cors"],
        "content-length": ["0"],
    },
    "ip.src": ipaddress.ip_address("198.51.100.23"),
    "ssl": True,
    "tls.client_auth.cert_presented": True,
    "tls.client_auth.cert_verified": True,
    "tls.client_auth.cert_revoked": False,
    "tls.client_auth.cert_status": "valid",
    "tls.client_auth.cert_fingerprint_sha256": FINGERPRINT,
    "tls.client_auth.cert_serial": "5d1e0b7a93c4f2e1",
    "tls.client_auth.cert_subject_dn": "CN=device-42,O=Example Corp",
    "tls.client_auth.cert_issuer_dn": MANAGED_CA,
    "tls.client_auth.cert_ski": "a1b2c3d4e5f60718293a4b5c6d7e8f9001122334",
    "tls.client_auth.cert_issuer_ski": "ffeeddccbbaa99887766554433221100ffeeddcc",
    "tls.client_auth.cert_not_before": 1767225600,
    "tls.client_auth.cert_not_after": 1798761600,
}


HISTORY = """## History (the 100-rule `FilterSet` row)

| date, machine | tree | µs per request | instructions per request (callgrind) |
|---|---|---:|---:|
| 2026-11-28, Xeon VM (yardstick 53 ns) | f860af4 | 48.3 / 52.1 / 53.4 (three runs) | (not counted there) |
| 2026-11-28, AMD EPYC VM (yardstick 21-23 ns) | f860af4 | 18.4 (median of 3 interleaved) | 382 k |
| 2026-11-28, AMD EPYC VM | b63d309 | 11.4 (median of 3 interleaved) | 204 k |

b63d309: fixed-string patterns (`(?i)(sqlmap|nikto|masscan|scannerN)`) became substring tests
over the lowered text (they were `re` searches with IGNORECASE, ~1.6 µs each here); the `re`
fast path, ASCII `lower()`/`upper()` and case-insensitive wildcards are inlined into the
generated function (no Python frame per test); a lazy field fetch does one dictionary lookup.
Instruction counts do not depend on the machine's load: the difference between
`valgrind --tool=callgrind .venv/bin/python bench/rules_bench.py --only-evaluate 2000` and the
same with `0`, divided by 2,000. Scaled by the yardstick, the slow Xeon VM would
now take ~25-30 µs per request, inside the goal with room to spare.
"""


def mixed_rules() -> list[str]:
    """100 rules of the kinds WAF custom rules are made of; none matches REQUEST."""
    rules: list[str] = []
    for i in range(20):  # the seed's mTLS rule, one per protected host
        rules.append(f'(http.host eq "svc{i}.example.com" and not tls.client_auth.cert_verified)')
    for i in range(10):  # Cloudflare's canonical form, hosts in a set
        rules.append(
            f'(http.host in {{"a{i}.example.com" "b{i}.example.com" "c{i}.example.com"}} '
            "and not cf.tls_client_auth.cert_verified)"
        )
    for i in range(10):
        rules.append(f'starts_with(http.request.uri.path, "/internal/{i}/") and not ip.src in {PRIVATE}')
    for i in range(10):
        rules.append(
            f'http.host wildcard "*.tenant{i}.example.net" and tls.client_auth.cert_status ne "valid"'
        )
    for i in range(4):
        rules.append(f'http.request.uri.path matches r"^/api/v{i + 2}/(admin|debug)/"')
    for i in range(4):
        rules.append(f'http.user_agent matches "(?i)(sqlmap|nikto|masscan|scanner{i})"')
    for i in range(10):
        rules.append(
            f'http.request.method in {{"PUT" "DELETE"}} and http.request.uri.path contains "/admin{i}"'
        )
    for i in range(4):
        rules.append(f'any(http.request.headers["x-client-id"][*] eq "revoked-device-{i}")')
    for i in range(4):
        rules.append(f'any(lower(http.request.headers["x-env"][*]) eq "staging{i}")')
    for i in range(4):
        rules.append(
            f'tls.client_auth.cert_fingerprint_sha256 in {{"{i:064x}" "{i + 100:064x}"}} '
            "or tls.client_auth.cert_revoked"
        )
    for i in range(4):
        rules.append(
            f'tls.client_auth.cert_serial eq "{i:016x}" or tls.client_auth.cert_not_after lt {1700000000 + i}'
        )
    for i in range(8):
        rules.append(f"ip.src in {{203.0.113.0/24 2001:db8::/32 198.51.{i}.0/24}} and ssl")
    rules.append('not ssl and http.host eq "api.example.com"')
    rules.append('lower(http.request.uri.query) contains "union select"')
    rules.append('http.referer contains "evil.example"')
    rules.append('http.request.uri.args["debug"][0] eq "1"')
    rules.append('len(http.request.headers["cookie"]) gt 4')
    rules.append('http.cookie contains "admin=1"')
    rules.append('http.request.full_uri wildcard "http://*"')
    rules.append(f'tls.client_auth.cert_presented and tls.client_auth.cert_issuer_dn ne "{MANAGED_CA}"')
    assert len(rules) == 100, len(rules)
    return rules


def pin_to_one_cpu() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[-1]
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def median_time(fn: Callable[[], None], loops: int, runs: int) -> float:
    """Median over ``runs`` of the mean seconds per call over ``loops`` calls."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - started) / loops)
    return statistics.median(samples)


def evaluate_all(filters: list[Filter]) -> Callable[[], None]:
    getter = REQUEST.get
    context = EDGE_SCHEME.context

    def one_request() -> None:
        ctx = context(getter)
        for flt in filters:
            if flt.execute(ctx):
                raise AssertionError(f"benchmark request matched {flt!r}")

    return one_request


def evaluate_set(filter_set: FilterSet) -> Callable[[], None]:
    getter = REQUEST.get
    context = EDGE_SCHEME.context

    def one_request() -> None:
        if filter_set.first_match(context(getter)) != -1:
            raise AssertionError("benchmark request matched a rule")

    return one_request


def python_call_cost() -> float:
    """Seconds per call of an empty Python function: a yardstick for comparing machines."""

    def noop() -> None:
        pass

    return median_time(noop, loops=200_000, runs=5)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="write bench/RULES.md")
    parser.add_argument(
        "--only-evaluate",
        type=int,
        metavar="N",
        help="compile the 100 rules, evaluate them N times with FilterSet and exit (for callgrind)",
    )
    args = parser.parse_args()
    if args.only_evaluate is not None:
        one_request = evaluate_set(compile_filters([parse(r) for r in mixed_rules()]))
        for _ in range(args.only_evaluate):
            one_request()
        return 0
    pinned = pin_to_one_cpu()
    runs = args.runs

    rules = mixed_rules()
    compile_seed = median_time(lambda: compile_filter(parse(SEED_RULE)), loops=300, runs=runs)
    compile_mixed = median_time(lambda: [compile_filter(parse(r)) for r in rules], loops=3, runs=runs)

    seed = [compile_filter(parse(SEED_RULE))]
    mixed = [compile_filter(parse(r)) for r in rules]
    seed_request = REQUEST | {"tls.client_auth.cert_verified": True}
    seed_eval = median_time(
        lambda: seed[0].execute(EDGE_SCHEME.context(seed_request.get)), loops=20000, runs=runs
    )
    mixed_eval = median_time(evaluate_all(mixed), loops=2000, runs=runs)
    mixed_set = compile_filters([parse(r) for r in rules])
    set_eval = median_time(evaluate_set(mixed_set), loops=2000, runs=runs)
    no_regex = compile_filters([parse(r) for r in rules if "matches" not in r])
    no_regex_eval = median_time(evaluate_set(no_regex), loops=2000, runs=runs)
    call_cost = python_call_cost()
    fields_read = sorted(set().union(*(f.fields for f in mixed)))

    us = 1e6
    rows = [
        ("compile: seed rule (parse + compile)", f"{compile_seed * us:.1f} µs"),
        ("compile: 100 mixed rules", f"{compile_mixed * 1e3:.1f} ms"),
        ("evaluate: seed rule, per request (fresh context)", f"{seed_eval * us:.2f} µs"),
        ("evaluate: 100 mixed rules, `Filter.execute` each, per request", f"{mixed_eval * us:.1f} µs"),
        ("evaluate: 100 mixed rules, one `FilterSet.first_match`, per request", f"{set_eval * us:.1f} µs"),
        (
            f"evaluate: the {len(no_regex)} rules without `matches`, `FilterSet`",
            f"{no_regex_eval * us:.1f} µs",
        ),
        ("yardstick: one empty Python function call", f"{call_cost * 1e9:.0f} ns"),
        (
            "goal: 100 rules per request <= 50 µs",
            ("met" if min(mixed_eval, set_eval) * us <= 50 else "NOT met on this machine"),
        ),
    ]
    table = ["| measurement | median |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
    env = (
        f"Python {platform.python_version()} ({platform.python_implementation()}), {cpu_model()}, "
        f"{os.cpu_count()} CPUs, {pinned}, median of {runs} runs"
    )
    print(env)
    print("\n".join(table))
    print(f"fields the 100 rules read: {len(fields_read)} of {len(EDGE_SCHEME.fields)}")
    if args.write:
        text = "\n".join(
            [
                "# Rule language benchmark",
                "",
                "Produced by `bench/rules_bench.py` (issue 3). Re-run with:",
                "",
                "```",
                ".venv/bin/python bench/rules_bench.py --write",
                "```",
                "",
                f"Environment: {env}.",
                "",
                *table,
                "",
                "What is measured:",
                "",
                "- *compile*: `parse` + `compile_filter` (type checking, regex automata, code generation).",
                "- *evaluate*: one request = a fresh `EDGE_SCHEME.context(getter)` over a realistic request "
                "(12 headers, verified client certificate) and `execute` of every rule in order. The request "
                "matches none of the 100 rules, so all are evaluated. Fields are fetched lazily "
                f"({len(fields_read)} distinct fields are read by the 100 rules).",
                "- The 100 rules: 20 seed-style mTLS rules, 10 Cloudflare-style host-set rules, 10 path "
                "prefix + IP rules, 10 wildcard rules, 8 regex rules, 10 method/path rules, 8 header `[*]` "
                "rules, 8 certificate-field rules, 8 IP/CIDR rules, 8 miscellaneous (see `mixed_rules()`).",
                "",
                "Reading the numbers:",
                "",
                "- This workplace machine is a shared 2-vCPU VM (other sessions run test suites beside the "
                "benchmark); the yardstick row (an empty Python call) is 2-4x what a current desktop core "
                "takes, and the rows move by +-30 % between runs. Compare rows with each other, and scale by "
                "the yardstick when comparing machines.",
                "- `FilterSet.first_match` (all rules in one generated function) saves the two Python calls "
                "per rule that `Filter.execute` costs; the edge should use it for its rule list.",
                "- The 8 `matches` rules: four are case-insensitive `(?i)(a|b|c)` searches over a "
                "100-character User-Agent, which the compiler turns into `in` tests over the lowered text "
                "(a pattern that can only match a few fixed strings); the four path patterns run `re` "
                "directly (bounded patterns, short inputs). Other patterns walk the linear-time automaton.",
                "",
                HISTORY,
            ]
        )
        (ROOT / "bench" / "RULES.md").write_text(text, encoding="utf-8")
        print("wrote bench/RULES.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
