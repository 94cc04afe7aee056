"""RSS growth of a server process per 1,000 idle mTLS connections.

Opens ``N`` connections (50 at a time), each doing a full TLS 1.3 handshake with the managed
client certificate and one keep-alive ``GET /``, then holds all of them open and idle, and
reads the server process's VmRSS before and after (1 s after the last one, so lazily freed
buffers settle). Run on the generator core::

    taskset -c 1 python bench/edge/idle.py PORT PID N CERT KEY HOST

Prints one JSON object: base and loaded RSS (KiB), the delta per connection and per 1,000, and
how many connections answered 200 (all must, or the number is not the one we mean).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from pathlib import Path


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def _open(
    port: int, ctx: ssl.SSLContext, host: str, gate: asyncio.Semaphore, held: list[asyncio.StreamWriter]
) -> int:
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=host)
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        held.append(writer)
        return status


async def measure(port: int, pid: int, n: int, cert: str, key: str, host: str) -> dict[str, float | int]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the server's identity is not what this measures
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    held: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(50)
    base = rss_kib(pid)
    t0 = time.monotonic()
    statuses = await asyncio.gather(*(_open(port, ctx, host, gate, held) for _ in range(n)))
    opened_s = time.monotonic() - t0
    await asyncio.sleep(1.0)
    loaded = rss_kib(pid)
    for writer in held:
        writer.close()
    await asyncio.sleep(0.5)
    delta = loaded - base
    return {
        "connections": n,
        "ok": sum(1 for s in statuses if s == 200),
        "base_kib": base,
        "loaded_kib": loaded,
        "delta_kib_per_conn": delta / n,
        "delta_mib_per_1000": delta / n * 1000 / 1024,
        "open_seconds": opened_s,
    }


def main() -> None:
    port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    cert, key, host = sys.argv[4], sys.argv[5], sys.argv[6]
    print(json.dumps(asyncio.run(measure(port, pid, n, cert, key, host))))


if __name__ == "__main__":
    main()
