"""The floor: the least a Python proxy on certgate's data path can do per request.

Same event loop (uvloop), same TLS engine (``bundledtls``: memory BIOs, the client certificate
requested with the managed CA's name, accepted without a verdict), same origin, but nothing
else: no HTTP parser, no verification, no rules, no RFC 9440 headers, no access log, no metrics.
Each client connection gets its own keep-alive origin connection; a request head (the bench
sends GETs without a body) is answered by sending one fixed request to the origin and relaying
its response (``Content-Length`` framing) back as it is.

This does **not** do the job, and the harness never compares it with nginx as if it did. It
answers one question: how much of certgate's CPU per keep-alive request is the data path
itself (uvloop callbacks into Python, the TLS record layer, the system calls), which no amount
of tuning the edge's own Python can remove. ``run.py --floor-variant`` runs it beside the others.

    python bench/edge/floor.py --listen PORT --origin PORT --chain PEM --key PEM --client-ca PEM
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
from pathlib import Path
from typing import cast

import uvloop
from cryptography import x509

from certgate.edge import bundledtls

_HEAD_END = b"\r\n\r\n"


class _Origin(asyncio.Protocol):
    """The client connection's own origin connection: relays one response at a time."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.need = -1  # bytes of the response still missing; -1: its head is not complete yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a registered subclass

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if self.need < 0:
            end = buf.find(_HEAD_END)
            if end < 0:
                return
            start = buf.find(b"\r\ncontent-length:", 0, end)
            if start < 0:
                start = buf.find(b"\r\nContent-Length:", 0, end)
            length = int(buf[start + 17 : buf.index(b"\r\n", start + 2)]) if start >= 0 else 0
            self.need = end + 4 + length
        if len(buf) >= self.need:
            self.client.respond(bytes(buf[: self.need]))
            del buf[: self.need]
            self.need = -1

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Client(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, origin_port: int, request: bytes) -> None:
        self.loop = loop
        self.origin_port = origin_port
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.origin: _Origin | None = None
        self.buffer = bytearray()
        self.waiting = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a registered subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next()

    def _next(self) -> None:
        if self.waiting:
            return
        end = self.buffer.find(_HEAD_END)
        if end < 0:
            return
        del self.buffer[: end + 4]
        self.waiting = True
        origin = self.origin
        if origin is not None and origin.transport is not None:
            origin.transport.write(self.request)
        else:
            self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        _, origin = await self.loop.create_connection(lambda: _Origin(self), "127.0.0.1", self.origin_port)
        self.origin = origin
        assert origin.transport is not None
        origin.transport.write(self.request)

    def respond(self, response: bytes) -> None:
        assert self.transport is not None
        self.transport.write(response)
        self.waiting = False
        self._next()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.origin is not None and self.origin.transport is not None:
            self.origin.transport.close()


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    anchor = x509.load_pem_x509_certificate(args.client_ca.read_bytes())
    context = bundledtls.BundledTLSContext(
        chain_pem=args.chain.read_bytes(),
        key_pem=args.key.read_bytes(),
        client_ca_names=(anchor.subject.public_bytes(),),
        minimum_version=0x0303,
        maximum_version=0x0304,
        alpn_protocols=("http/1.1",),
    )
    sock = socket.create_server(("127.0.0.1", args.listen), backlog=1024)
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{args.origin}\r\n\r\n".encode()
    server = bundledtls.BundledTLSServer(
        loop,
        sock,
        lambda: _Client(loop, args.origin, request),
        context,
        handshake_timeout=10.0,
        max_intermediates=8,
    )
    await server.start()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    ap.add_argument("--origin", type=int, required=True, help="the origin's port on 127.0.0.1")
    ap.add_argument("--chain", type=Path, required=True, help="edge certificate chain (PEM)")
    ap.add_argument("--key", type=Path, required=True, help="edge key (PEM)")
    ap.add_argument("--client-ca", type=Path, required=True, help="CA named in CertificateRequest")
    uvloop.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
