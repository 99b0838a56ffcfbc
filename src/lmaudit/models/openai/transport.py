"""Transport: one HTTP client per endpoint behind one small interface, and the faults it may raise.

The model and its scheduler never see a client library: a transport's `post(path, body)` returns the parsed JSON
body or raises one of the faults below, and `close()` releases its connections. Two transports implement it:
`AiohttpTransport`, a lean client (the default), and `SdkTransport`, the official SDK's `AsyncOpenAI`. The
scheduling, retries, routing and resume above them are the same for both.

Faults, by what a retry can do about them:
- `HttpStatus`: the server answered with an error status (the scheduler decides by status);
- `ConnectFailed`: nothing accepted the connection (the endpoint is down: retry elsewhere or later);
- `Dropped`: sent, but no complete answer came back (timeout, reset, truncated body: retry);
- `Malformed`: a complete answer that is not what the endpoint promises (retry);
- `Unfixable`: the request cannot succeed however often it is sent (a URL the client refuses, a host name that
  does not resolve): the call stops at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import urllib.parse
import urllib.request
from typing import Any, Protocol

from lmaudit.core.redact import redact

# getaddrinfo's answers for a name that does not exist (EAI_AGAIN, "try again", stays transient).
_NAME_NOT_FOUND = {getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA", "EAI_FAIL") if hasattr(socket, name)}


class HttpStatus(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, retry_after: float | None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class ConnectFailed(Exception):
    """No connection could be made: the endpoint is down."""


class Dropped(Exception):
    """The request was sent but no complete answer came back (timeout, reset, truncated body)."""

    def __init__(self, what: str, message: str):
        super().__init__(message)
        self.what = what


class Malformed(Exception):
    """A 200 response whose body is not what the endpoint promises (truncated, not JSON, wrong shape)."""


class Unfixable(Exception):
    """A request no retry can make succeed."""


class Transport(Protocol):
    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """The JSON body of a POST to base URL + path, or one of the faults above."""
        ...

    async def close(self) -> None: ...


def make_transport(http: str, url: str, key: str, max_concurrency: int, timeout: float) -> Transport:
    """Build on the running event loop: both clients bind their connection pools to it."""
    kind = SdkTransport if http == "sdk" else AiohttpTransport
    return kind(url, key, max_concurrency, timeout)


def retry_after(headers: Any) -> float | None:
    """Seconds from retry-after-ms or Retry-After (seconds, fractional allowed, or an HTTP date)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            pass
        try:
            from email.utils import parsedate_to_datetime

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            continue
    return None


def env_proxy(url: str) -> str | None:
    """The proxy that HTTP(S)_PROXY and NO_PROXY name for this URL, looked up once: aiohttp's trust_env looks it
    up on every request, which cost 7 points of throughput at 256 in flight."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def connection_fault(exc: BaseException, url: str) -> Exception:
    """What a failed connection means, read down the chain of causes (the SDK wraps a refused connection or a
    failed name lookup in a timeout): Unfixable for a name that does not resolve or a URL the client refuses,
    ConnectFailed when nothing listens, Dropped otherwise."""
    import aiohttp

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 32:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for cause in chain:
        if isinstance(cause, socket.gaierror) and cause.errno in _NAME_NOT_FOUND:
            host = urllib.parse.urlsplit(url).hostname
            return Unfixable(f"the host {host!r} of base URL {redact(url)} does not resolve ({cause.strerror}); "
                             "check the URL")
        if isinstance(cause, aiohttp.InvalidURL):
            return Unfixable(f"the HTTP client refuses the URL {redact(str(cause))}")
    for cause in chain:
        if isinstance(cause, (ConnectionRefusedError, aiohttp.ClientConnectorError)):
            return ConnectFailed(redact(str(cause)))
    return Dropped("connection", redact(f"{type(exc).__name__}: {exc}"))


class AiohttpTransport:
    """A lean client on aiohttp: about a third of the SDK's CPU per request. It sends what the SDK sends that a
    server acts on: the bearer key, the organisation and project from OPENAI_ORG_ID and OPENAI_PROJECT_ID, and
    it goes through the proxy of HTTP(S)_PROXY unless NO_PROXY exempts the host, as the SDK's client does."""

    def __init__(self, url: str, key: str, max_concurrency: int, timeout: float):
        import aiohttp
        import orjson

        self._aiohttp, self._orjson = aiohttp, orjson
        self.url = url
        # The body goes as bytes that orjson encodes (a third of json's time), so the type is set here.
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        for variable, header in (("OPENAI_ORG_ID", "OpenAI-Organization"), ("OPENAI_PROJECT_ID", "OpenAI-Project")):
            if os.environ.get(variable):
                headers[header] = os.environ[variable]
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_concurrency),
            timeout=aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 10.0)),
            headers=headers, proxy=env_proxy(url))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        aiohttp = self._aiohttp
        try:
            async with self.session.post(self.url + path, data=self._orjson.dumps(body)) as response:
                payload = await response.read()
                if response.status >= 400:
                    raise HttpStatus(response.status, f"Error code: {response.status} - "
                                     f"{payload[:2000].decode(errors='replace')}", retry_after(response.headers))
        except asyncio.TimeoutError as exc:
            raise Dropped("timeout", "the request timed out") from exc
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as exc:
            raise connection_fault(exc, self.url) from exc
        except aiohttp.ClientError as exc:
            raise Dropped("connection", redact(f"{type(exc).__name__}: {exc}")) from exc
        except ValueError as exc:  # raised while building the request: sending it again builds it the same way
            raise Unfixable(f"the request to {redact(self.url + path)} cannot be built: {redact(str(exc))}") from exc
        try:
            return self._orjson.loads(payload)
        except ValueError as exc:
            raise Malformed(f"the body is not JSON: {exc}") from exc

    async def close(self) -> None:
        await self.session.close()


class SdkTransport:
    """The official SDK's AsyncOpenAI (its own retries off), through its low-level `post`.

    The JSON comes back as plain data: building the SDK's typed response objects cost more CPU than the request.
    """

    def __init__(self, url: str, key: str, max_concurrency: int, timeout: float):
        import httpx2
        import openai

        self._openai = openai
        self.url = url
        limits = httpx2.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
        timeouts = httpx2.Timeout(timeout, connect=min(timeout, 10.0))
        self.client = openai.AsyncOpenAI(api_key=key, base_url=url, max_retries=0, timeout=timeouts,
                                         http_client=openai.DefaultAioHttpClient(limits=limits, timeout=timeouts))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        openai = self._openai
        try:
            return await self.client.post(path, body=body, cast_to=object)
        except openai.APIStatusError as exc:
            raise HttpStatus(exc.status_code, str(exc), retry_after(exc.response.headers)) from exc
        except openai.APIConnectionError as exc:
            fault = connection_fault(exc, self.url)
            if isinstance(fault, Dropped) and isinstance(exc, openai.APITimeoutError):
                fault = Dropped("timeout", "the request timed out")
            raise fault from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # the SDK parses the body
            raise Malformed(f"the body is not JSON: {exc}") from exc
        except ValueError as exc:  # raised while building the request: sending it again builds it the same way
            raise Unfixable(f"the request to {redact(self.url + path)} cannot be built: {redact(str(exc))}") from exc

    async def close(self) -> None:
        await self.client.close()
