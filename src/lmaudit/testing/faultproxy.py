"""A fault-injecting HTTP proxy for testing API clients: loopback only, bounded, seeded.

Put it between a client and an OpenAI-compatible server; a chosen share of requests fails in one of these ways:

- `429`: 429 Too Many Requests with a Retry-After header (not forwarded);
- `500`: 500 Internal Server Error (not forwarded);
- `timeout`: no answer for `hold` seconds, then the connection is dropped (not forwarded);
- `reset`: the connection is reset before any answer (not forwarded);
- `truncated`: forwarded and answered upstream (so paid), but the body is cut short and the connection dropped;
- `malformed`: forwarded and answered upstream, then delivered as a 200 whose JSON body is broken.

Whether a request fails, and how, is a function of the seed, the request body and how many times that body
has been seen: the same run of requests meets the same faults whatever order they arrive in. Every decision is
counted, and `delivered` holds the body keys of complete 200 answers that reached the client.

    with BackgroundServer(FaultProxy("http://127.0.0.1:8000", rate=0.1, seed=1).app) as proxy: ...
    python -m lmaudit.testing.faultproxy --upstream http://127.0.0.1:8000 --rate 0.1 --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from lmaudit.core.errors import ConfigError
from lmaudit.serve import is_loopback
from lmaudit.testing.stubserver import body_key

KINDS = ("429", "500", "timeout", "reset", "truncated", "malformed")
MAX_BODY = 8 << 20
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass
class FaultProxy:
    upstream: str
    rate: float = 0.1
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    retry_after: float = 0.05  # seconds, sent as Retry-After (fractional: the client must accept it)
    hold: float = 2.0  # seconds a `timeout` fault holds the request before dropping it
    max_in_flight: int = 512
    counts: Counter = field(default_factory=Counter)  # fault kind (or "ok") -> requests
    seen: Counter = field(default_factory=Counter)  # body key -> arrivals
    delivered: Counter = field(default_factory=Counter)  # body key -> complete 200 answers delivered
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic time, body key, outcome)

    def __post_init__(self) -> None:
        host = urlsplit(self.upstream).hostname or ""
        if not is_loopback(host):
            raise ConfigError(f"the fault proxy forwards to loopback only, not {self.upstream}")
        if not 0 <= self.rate <= 1:
            raise ConfigError(f"fault rate must be within 0-1, got {self.rate}")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ConfigError(f"unknown fault kind(s) {unknown}; choose from {', '.join(KINDS)}")
        self.upstream = self.upstream.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_cleanup.append(self._close)
        return app

    def fault_for(self, key: str, attempt: int) -> str | None:
        """The fault (or None) for the `attempt`-th arrival of a body: seeded, order-independent."""
        digest = hashlib.sha256(f"{self.seed}|{key}|{attempt}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= self.rate:
            return None
        return self.kinds[int.from_bytes(digest[8:12], "big") % len(self.kinds)]

    async def _close(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_in_flight),
                timeout=aiohttp.ClientTimeout(total=600))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                         headers=headers) as answer:
            payload = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
            return answer.status, kept, payload

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        async with self._slots:
            body = await request.read()
            key = body_key(body)
            self.seen[key] += 1
            fault = self.fault_for(key, self.seen[key]) if request.method == "POST" else None
            self.counts[fault or "ok"] += 1
            self.events.append((time.monotonic(), key, fault or "ok"))
            if fault == "429":
                return web.json_response({"error": {"message": "rate limited (injected)", "type": "rate_limit"}},
                                         status=429, headers={"Retry-After": f"{self.retry_after:g}"})
            if fault == "500":
                return web.json_response({"error": {"message": "server error (injected)"}}, status=500)
            if fault == "timeout":
                await asyncio.sleep(self.hold)
                return _drop(request)
            if fault == "reset":
                return _drop(request)
            try:
                status, headers, payload = await self._forward(request, body)
            except aiohttp.ClientError:
                self.counts["upstream_down"] += 1
                return _drop(request)  # the upstream died: the client sees a dead server, as without a proxy
            if fault == "truncated":
                response = web.StreamResponse(status=status, headers=headers)
                response.content_length = len(payload)
                await response.prepare(request)
                await response.write(payload[: len(payload) // 2])
                return _drop(request)
            if fault == "malformed":
                payload = payload[: max(1, len(payload) // 3)] + b"\x00}{"
            response = web.Response(status=status, body=payload, headers=headers)
            await response.prepare(request)
            await response.write_eof()
            if status == 200 and fault is None:
                self.delivered[key] += 1
            return response


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the client's connection with no (further) answer: a reset as the client sees it."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError  # aiohttp ends the handler without writing anything


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lmaudit.testing.faultproxy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="base URL of the real server (loopback)")
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    import socket

    proxy = FaultProxy(args.upstream, rate=args.rate, seed=args.seed, kinds=tuple(args.kinds.split(",")))
    sock = socket.create_server(("127.0.0.1", args.port))
    print(f"fault proxy on http://127.0.0.1:{sock.getsockname()[1]} -> {args.upstream}", flush=True)
    web.run_app(proxy.app(), sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
