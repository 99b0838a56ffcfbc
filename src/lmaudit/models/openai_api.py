"""The `openai` backend: any OpenAI-compatible HTTP server (OpenAI, vLLM, llama.cpp, `lmaudit serve`, ...).

Spec: `openai:<model>@<base_url>[,<base_url>...]`, e.g. `openai:smollm2@http://127.0.0.1:8000/v1`.

The contract is synchronous; inside, each call runs all its requests concurrently on a private event loop that
lives in a background thread for the life of the model (so the SDK's async clients and their connection pools
are created once, on that loop, and reused by every call). Responses reach the caller's thread through a queue,
and `on_response(index, response)` runs there the moment each one arrives, so a runner can persist it before
anything else happens (and its SQLite connection never crosses threads).

Control: a congestion window caps requests in flight (`max_concurrency`); a 429 halves it (at most once per
second) and successes grow it back; Retry-After is honoured; other transient faults (5xx, timeouts, resets,
truncated or malformed bodies) are retried with exponential back-off and jitter, a bounded number of times.
With several base URLs, each request goes to the live endpoint with the fewest outstanding requests; an
endpoint that refuses connections leaves the rotation and is probed again with growing pauses.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import math
import os
import queue
import random
import re
import threading
import time
import urllib.parse
import urllib.request
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lmaudit.core.errors import ConfigError, LmauditError, ModelError, UnknownNameError
from lmaudit.core.types import (
    Generation,
    GenerateRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Request,
    Response,
    request_key,
)

KEY_VARIABLES = ("LMAUDIT_API_KEY", "OPENAI_API_KEY")
DUMMY_KEY = "lmaudit-no-key"  # local servers accept anything; the SDK refuses an empty key
ECHO_PROBE_PROMPT = "The capital of France is Paris. The capital of Italy is"
ECHO_PROBE_TOLERANCE = 0.05  # nats; a correct server's two paths agree to float noise, a wrong one is off by ~1
DROPS_BEFORE_DEAD = 5  # requests in a row lost on an endpoint that still accepts connections: treat it as dead
LETTER_HINT = ("for letter-choice MCQ on a chat-only API use the option loglikelihood=letters (it scores the "
               "option letters by the top_logprobs of the first answer token)")

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    """Backend options; every one can be given as a string (the CLI passes key=value pairs)."""

    api: str = "auto"  # "auto": prompts -> /completions, messages -> /chat/completions; "chat": chat only
    loglikelihood: str = "echo"  # "echo": prompt logprobs from /completions; "letters": chat top_logprobs
    top_logprobs: int = 20
    max_concurrency: int = 64
    max_retries: int = 8
    timeout: float = 120.0  # seconds per request
    retry_base_delay: float = 0.5  # seconds; doubles per attempt, with jitter
    retry_max_delay: float = 30.0
    dead_endpoint_timeout: float = 120.0  # give up once every endpoint has refused connections this long
    # "aiohttp": a lean client; "sdk": the official openai SDK, which spends ~3x the CPU per request (0.4 ms vs
    # 0.12 ms) and so falls behind lm-eval when answers arrive in bursts (docs/api-backend.md has the figures)
    http: str = "aiohttp"
    generation_logprobs: bool = False
    max_tokens_param: str = "max_tokens"  # newer OpenAI chat models want "max_completion_tokens"
    api_key_env: str = ""  # name of the variable holding the key; default LMAUDIT_API_KEY, then OPENAI_API_KEY
    prices: str = ""  # "prompt=<usd per 1M tokens>,completion=<usd per 1M tokens>"
    verify_echo: bool = True
    tag: str = ""  # added to the fingerprint: two servers that call different weights by the same name


def _parse_options(raw: dict[str, Any]) -> Options:
    valid = list(Options.__dataclass_fields__)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in Options.__dataclass_fields__:
            raise UnknownNameError("openai backend option", name, valid)
        kind = type(getattr(Options(), name))
        try:
            if kind is bool and isinstance(value, str):
                if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                value = value.lower() in {"true", "1", "yes"}
            values[name] = kind(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"openai backend option {name}={value!r}: expected {kind.__name__}") from exc
    options = Options(**values)
    if options.api not in {"auto", "chat"}:
        raise ConfigError(f"openai backend option api={options.api!r}: expected 'auto' or 'chat'")
    if options.http not in {"aiohttp", "sdk"}:
        raise ConfigError(f"openai backend option http={options.http!r}: expected 'aiohttp' or 'sdk'")
    if options.loglikelihood not in {"echo", "letters"}:
        raise ConfigError(f"openai backend option loglikelihood={options.loglikelihood!r}: "
                          "expected 'echo' or 'letters'")
    if options.max_concurrency < 1 or options.max_retries < 0 or options.timeout <= 0:
        raise ConfigError("openai backend options: max_concurrency >= 1, max_retries >= 0 and timeout > 0")
    if not 1 <= options.top_logprobs <= 20:
        raise ConfigError("openai backend option top_logprobs: expected 1-20 (the API's limit)")
    _parse_prices(options.prices)
    return options


def _parse_prices(text: str) -> dict[str, float]:
    if not text:
        return {}
    prices: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in {"prompt", "completion"}:
            raise ConfigError(f"openai backend option prices: unknown price '{name}' "
                              "(expected prompt=<usd per 1M tokens>,completion=<usd per 1M tokens>)")
        try:
            prices[name] = float(value)
        except ValueError as exc:
            raise ConfigError(f"openai backend option prices: {name}={value!r} is not a number") from exc
    return prices


def parse_spec(rest: str) -> tuple[str, list[str]]:
    """'<model>@<url>[,<url>...]' -> (model, urls). The model name may itself contain '@'."""
    found = re.search(r"@(?=https?://)", rest)
    if not found or found.start() == 0:
        raise ConfigError(f"openai model spec '{rest}': expected openai:<model>@<base_url>[,<base_url>...], "
                          "e.g. openai:gpt-4o-mini@https://api.openai.com/v1")
    model = rest[:found.start()]
    urls = [u.strip().rstrip("/") for u in rest[found.end():].split(",") if u.strip()]
    for url in urls:
        if not re.match(r"https?://[^/\s]+", url):
            raise ConfigError(f"openai model spec: '{url}' is not an http(s) base URL")
    if len(set(urls)) != len(urls):
        raise ConfigError(f"openai model spec lists a base URL twice: {', '.join(urls)}")
    return model, urls


def _api_key(options: Options) -> str:
    names = (options.api_key_env,) if options.api_key_env else KEY_VARIABLES
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    if options.api_key_env:
        raise ConfigError(f"openai backend: api_key_env={options.api_key_env} but that variable is not set")
    return DUMMY_KEY


# -- faults -------------------------------------------------------------------------------------------------

class _Retryable(Exception):
    """A transient failure: try again after `delay` seconds (None: the usual back-off)."""

    def __init__(self, what: str, delay: float | None = None):
        super().__init__(what)
        self.what = what
        self.delay = delay


class _Malformed(Exception):
    """A 200 response whose body is not what the endpoint promises (truncated, not JSON, wrong shape)."""


class _RequestFailed(LmauditError):
    """One request gave up; the batch reports it after every other request has been delivered."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def _retry_after(headers: Any) -> float | None:
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


# -- scheduling ---------------------------------------------------------------------------------------------

class _Window:
    """Requests in flight, capped by a limit that halves on a 429 and grows back by one per four successes.

    Waiters queue in FIFO order and each release wakes only as many as there are free slots, so thousands of
    queued requests cost nothing while they wait.
    """

    GROWTH = 0.25
    CUT_INTERVAL = 1.0  # one burst of 429s is one signal, not many

    def __init__(self, limit: int):
        self.max = limit
        self.limit = float(limit)
        self.in_flight = 0
        self.cuts = 0
        self._last_cut = -math.inf
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self.in_flight < max(1, int(self.limit)) and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over as we were cancelled: pass it on
            raise

    def release(self, *, throttled: bool = False) -> None:
        self.in_flight -= 1
        if throttled:
            now = time.monotonic()
            if now - self._last_cut >= self.CUT_INTERVAL:
                self.limit = max(1.0, self.limit / 2)
                self._last_cut = now
                self.cuts += 1
        else:
            self.limit = min(float(self.max), self.limit + self.GROWTH)
        while self._waiters and self.in_flight < max(1, int(self.limit)):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)


@dataclass
class _Endpoint:
    url: str
    client: Any
    outstanding: int = 0
    not_before: float = 0.0  # Retry-After: no request before this (monotonic seconds)
    dead_until: float = 0.0  # refused connections: out of rotation until then, then one probe
    dead_since: float | None = None
    failures: int = 0
    drops_in_row: int = 0  # sent but unanswered, with no answer in between
    probing: bool = False

    def dead(self) -> bool:
        return self.dead_since is not None


@dataclass
class _Counters:
    requests: int = 0  # answered requests (each paid once)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    faults: dict[str, int] = field(default_factory=dict)


# -- HTTP: two clients, one vocabulary of faults ---------------------------------------------------------------

class _HttpStatus(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, retry_after: float | None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class _ConnectFailed(Exception):
    """No connection could be made: the endpoint is down."""


class _Dropped(Exception):
    """The request was sent but no complete answer came back (timeout, reset, truncated body)."""

    def __init__(self, what: str, message: str):
        super().__init__(message)
        self.what = what


class _SdkClient:
    """The official SDK's AsyncOpenAI (its own retries off), through its low-level `post`.

    The JSON comes back as plain data: building the SDK's typed response objects cost more CPU than the request.
    """

    def __init__(self, url: str, key: str, options: Options):
        import httpx2
        import openai

        self._openai = openai
        limits = httpx2.Limits(max_connections=options.max_concurrency,
                               max_keepalive_connections=options.max_concurrency)
        timeout = httpx2.Timeout(options.timeout, connect=min(options.timeout, 10.0))
        self.client = openai.AsyncOpenAI(api_key=key, base_url=url, max_retries=0, timeout=timeout,
                                         http_client=openai.DefaultAioHttpClient(limits=limits, timeout=timeout))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        openai = self._openai
        try:
            return await self.client.post(path, body=body, cast_to=object)
        except openai.APIStatusError as exc:
            raise _HttpStatus(exc.status_code, str(exc), _retry_after(exc.response.headers)) from exc
        except openai.APIConnectionError as exc:
            if _refused(exc):
                raise _ConnectFailed(str(exc)) from exc
            raise _Dropped("timeout" if isinstance(exc, openai.APITimeoutError) else "connection", str(exc)) from exc

    async def close(self) -> None:
        await self.client.close()


def _refused(exc: BaseException) -> bool:
    """Whether a connection error means nothing listens there (the SDK's aiohttp transport reports it as a
    connect timeout, so look down the chain of causes)."""
    import aiohttp

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ConnectionRefusedError, aiohttp.ClientConnectorError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _env_proxy(url: str) -> str | None:
    """The proxy that HTTP(S)_PROXY and NO_PROXY name for this URL, looked up once: aiohttp's trust_env looks it
    up on every request, which cost 7 points of throughput at 256 in flight."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class _AiohttpClient:
    """A lean client on aiohttp: about a third of the SDK's CPU per request. It sends what the SDK sends that a
    server acts on: the bearer key, the organisation and project from OPENAI_ORG_ID and OPENAI_PROJECT_ID, and
    it goes through the proxy of HTTP(S)_PROXY unless NO_PROXY exempts the host, as the SDK's client does."""

    def __init__(self, url: str, key: str, options: Options):
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
            connector=aiohttp.TCPConnector(limit=options.max_concurrency),
            timeout=aiohttp.ClientTimeout(total=options.timeout, connect=min(options.timeout, 10.0)),
            headers=headers, proxy=_env_proxy(url))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        aiohttp = self._aiohttp
        try:
            async with self.session.post(self.url + path, data=self._orjson.dumps(body)) as response:
                payload = await response.read()
                if response.status >= 400:
                    raise _HttpStatus(response.status, f"Error code: {response.status} - "
                                      f"{payload[:2000].decode(errors='replace')}", _retry_after(response.headers))
        except asyncio.TimeoutError as exc:
            raise _Dropped("timeout", "the request timed out") from exc
        except aiohttp.ClientConnectorError as exc:
            raise _ConnectFailed(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise _Dropped("connection", f"{type(exc).__name__}: {exc}") from exc
        return self._orjson.loads(payload)  # its JSONDecodeError is a ValueError: a malformed body, retried

    async def close(self) -> None:
        await self.session.close()


# -- the model ----------------------------------------------------------------------------------------------

class OpenAIModel:
    """An OpenAI-compatible endpoint (or several replicas of one) behind the Model contract."""

    def __init__(self, model: str, base_urls: Sequence[str], options: Options | None = None):
        if not base_urls:
            raise ConfigError("openai backend: give at least one base URL")
        self.model = model
        self.base_urls = list(base_urls)
        self.options = options or Options()
        self._key = _api_key(self.options)
        self._prices = _parse_prices(self.options.prices)
        self.on_response: Callable[[int, Response], None] | None = None
        self._counters = _Counters()
        self._letter_masses: list[float] = []
        self._letters_missing = 0
        self._echo_max_tokens: int | None = None  # 0 or 1 once the echo probe has run
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._endpoints: list[_Endpoint] = []
        self._finalizer: weakref.finalize | None = None
        self._window: _Window | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the key
        return f"OpenAIModel({self.model!r}, {self.base_urls!r}, {self.fingerprint()!r})"

    # -- contract -------------------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """What decides the answers: the model name, the API shape and the scoring method; not the URLs or key."""
        parts = [f"api={self.options.api}"]
        if self.options.loglikelihood == "letters":
            parts.append(f"ll=letters{self.options.top_logprobs}")
        if self.options.tag:
            parts.append(f"tag={self.options.tag}")
        return f"openai:{self.model}@" + ";".join(parts)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        if not requests:
            return []
        if self.options.loglikelihood == "letters":
            return self._run(requests, self._letter_jobs(requests))  # type: ignore[return-value]
        if self.options.api == "chat":
            raise ModelError(f"{self.model}: loglikelihood needs /completions with echo and prompt logprobs, "
                             f"but this model is set to api=chat; {LETTER_HINT}")
        for index, request in enumerate(requests):
            if not request.context:
                raise ModelError(f"loglikelihood request {index} has an empty context: an API gives no "
                                 "log-probability for a prompt's first token")
            if not request.continuation:
                raise ModelError(f"loglikelihood request {index} has an empty continuation")
        if self._echo_max_tokens is None and self.options.verify_echo:
            self._submit(self._verify_echo()).result()
        jobs = {i: (lambda r=r: self._echo_loglikelihood(r)) for i, r in enumerate(requests)}
        return self._run(requests, jobs)  # type: ignore[return-value]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        if not requests:
            return []

        async def one(request: GenerateRequest) -> Generation:
            return (await self._generate_one(request, 1))[0]

        jobs = {i: (lambda r=r: one(r)) for i, r in enumerate(requests)}
        return self._run(requests, jobs)  # type: ignore[return-value]

    # -- backend extras -------------------------------------------------------------------------------------
    def sample(self, requests: Sequence[GenerateRequest], n: int) -> list[list[Generation]]:
        """n samples per request in one API call each (the API's `n`); not seed-reproducible one by one."""
        if n < 1:
            raise ConfigError(f"sample: n must be >= 1, got {n}")
        jobs = {i: (lambda r=r: self._generate_one(r, n)) for i, r in enumerate(requests)}
        return self._run(requests, jobs, deliver=False)  # type: ignore[return-value]

    @property
    def usage(self) -> dict[str, Any]:
        """Tokens and requests paid for so far (probes and retries of answered requests included)."""
        with self._lock:
            c = self._counters
            report: dict[str, Any] = {
                "requests": c.requests, "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "total_tokens": c.prompt_tokens + c.completion_tokens, "retries": c.retries,
                "faults": dict(sorted(c.faults.items())), "http_client": self.options.http,
            }
            if self._window is not None:
                report["concurrency_cuts"] = self._window.cuts
            if self._prices:
                report["cost_usd"] = round((c.prompt_tokens * self._prices.get("prompt", 0.0)
                                            + c.completion_tokens * self._prices.get("completion", 0.0)) / 1e6, 6)
            if self._letter_masses:
                report["letter_choice"] = {
                    "questions": len(self._letter_masses),
                    "mean_mass_outside_letters": sum(self._letter_masses) / len(self._letter_masses),
                    "max_mass_outside_letters": max(self._letter_masses),
                    "letters_not_in_top_logprobs": self._letters_missing,
                }
            return report

    def close(self) -> None:
        """Close the connections and stop the loop thread (also done when the model is collected or at exit)."""
        if self._finalizer is not None:
            self._finalizer()
        self._loop = self._thread = self._finalizer = None
        self._endpoints = []

    def __enter__(self) -> "OpenAIModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop thread ------------------------------------------------------------------------------------
    def _submit(self, coroutine: Awaitable[T]) -> "concurrent.futures.Future[T]":
        if self._loop is None:
            self._start_loop()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]

    def _start_loop(self) -> None:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"lmaudit-openai-{self.model}", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        asyncio.run_coroutine_threadsafe(self._make_clients(), loop).result()
        self._finalizer = weakref.finalize(self, _shutdown, loop, thread, [e.client for e in self._endpoints])

    async def _make_clients(self) -> None:
        make = _SdkClient if self.options.http == "sdk" else _AiohttpClient
        self._endpoints = [_Endpoint(url, make(url, self._key, self.options)) for url in self.base_urls]
        self._window = _Window(self.options.max_concurrency)

    def _run(self, requests: Sequence[Request], jobs: dict[int, Callable[[], Awaitable[Any]]],
             deliver: bool = True) -> list[Any]:
        """Run the jobs concurrently; identical requests are sent once. Delivers each answer as it arrives."""
        owners: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            owners.setdefault(request_key(request), []).append(index)
        arrivals: queue.SimpleQueue = queue.SimpleQueue()
        unique = [indices for indices in owners.values()]
        batch = self._submit(self._gather([(indices, jobs[indices[0]]) for indices in unique], arrivals))
        results: list[Any] = [None] * len(requests)
        failures: list[_RequestFailed] = []
        try:
            received = 0
            while received < len(unique):
                try:
                    batch_of_answers = arrivals.get(timeout=1.0)
                except queue.Empty:
                    if batch.done():
                        batch.result()  # raises what killed the batch
                    continue
                received += len(batch_of_answers)
                for indices, outcome in batch_of_answers:
                    if isinstance(outcome, _RequestFailed):
                        failures.append(outcome)
                        continue
                    if isinstance(outcome, BaseException):
                        raise outcome
                    for index in indices:
                        results[index] = outcome
                        if deliver and self.on_response is not None:
                            self.on_response(index, outcome)
            batch.result()
        finally:
            if not batch.done():
                batch.cancel()
        if failures:
            failures.sort(key=lambda f: f.index)
            answered = len(unique) - len(failures)
            raise ModelError(f"{len(failures)} of {len(unique)} distinct requests to {self.model} failed "
                             f"({answered} answered were delivered); first: {failures[0]}")
        return results

    async def _gather(self, work: list[tuple[list[int], Callable[[], Awaitable[Any]]]],
                      arrivals: queue.SimpleQueue) -> None:
        # Answers that arrive in the same loop iteration cross to the caller's thread together: one wake-up of
        # that thread per batch rather than per answer (each wake-up is a GIL hand-over).
        ready: list[tuple[list[int], Any]] = []
        loop = asyncio.get_running_loop()

        def flush() -> None:
            arrivals.put(list(ready))
            ready.clear()

        def deliver(item: tuple[list[int], Any]) -> None:
            if not ready:
                loop.call_soon(flush)
            ready.append(item)

        async def one(indices: list[int], job: Callable[[], Awaitable[Any]]) -> None:
            try:
                deliver((indices, await job()))
            except LmauditError as exc:
                deliver((indices, _RequestFailed(indices[0], f"request {indices[0]}: {self._scrub(exc)}")))
            except Exception as exc:  # a bug, not a fault: surface it in the caller's thread
                deliver((indices, exc))

        tasks = [asyncio.ensure_future(one(indices, job)) for indices, job in work]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc)
        return text.replace(self._key, "***") if self._key != DUMMY_KEY else text

    # -- one request, with retries --------------------------------------------------------------------------
    async def _call(self, route: str, params: dict[str, Any], parse: Callable[[Any], T]) -> T:
        """POST one request to the least busy live endpoint, retrying transient faults; `parse` checks the body."""
        assert self._window is not None
        path = "/chat/completions" if route == "chat" else "/completions"
        attempt = 0
        while True:
            await self._window.acquire()
            throttled = False
            delay: float | None = None
            endpoint: _Endpoint | None = None
            try:
                endpoint = await self._pick()
                endpoint.outstanding += 1
                try:
                    raw = await endpoint.client.post(path, params)
                    if not isinstance(raw, dict):
                        raise _Malformed("the body is not a JSON object")
                    result = parse(raw)
                except _HttpStatus as exc:
                    if exc.status == 429:
                        throttled = True
                        if exc.retry_after:
                            endpoint.not_before = max(endpoint.not_before, time.monotonic() + exc.retry_after)
                        raise _Retryable("429", exc.retry_after) from exc
                    if exc.status >= 500 or exc.status in (408, 409):
                        raise _Retryable(str(exc.status), exc.retry_after) from exc
                    raise self._client_error(path, exc) from exc
                except _ConnectFailed as exc:
                    self._mark_dead(endpoint)
                    raise _Retryable("connect") from exc
                except _Dropped as exc:
                    endpoint.drops_in_row += 1
                    if endpoint.drops_in_row >= DROPS_BEFORE_DEAD:
                        self._mark_dead(endpoint)
                    raise _Retryable(exc.what) from exc
                except (_Malformed, KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
                    raise _Retryable("malformed") from exc  # ValueError covers undecodable JSON
                self._mark_alive(endpoint)
                self._count(raw)
                return result
            except _Retryable as fault:
                with self._lock:
                    self._counters.faults[fault.what] = self._counters.faults.get(fault.what, 0) + 1
                if attempt >= self.options.max_retries:
                    cause = fault.__cause__ or fault
                    raise ModelError(f"gave up after {attempt + 1} tries ({fault.what}): {cause}") from None
                delay = fault.delay
            finally:
                if endpoint is not None:
                    endpoint.outstanding -= 1
                    endpoint.probing = False
                self._window.release(throttled=throttled)
            attempt += 1
            with self._lock:
                self._counters.retries += 1
            if delay is None:
                backoff = min(self.options.retry_max_delay, self.options.retry_base_delay * 2 ** (attempt - 1))
                delay = backoff * random.uniform(0.5, 1.0)
            await asyncio.sleep(delay)

    def _client_error(self, path: str, exc: "_HttpStatus") -> ModelError:
        message = f"{self.model}: {path} answered {exc.status}: {self._scrub(exc)}"
        if exc.status in (401, 403):
            message += (f". Set the key in {self.options.api_key_env or ' or '.join(KEY_VARIABLES)} "
                        "(never on the command line)")
        elif path == "/completions" and exc.status in (404, 405, 501):
            message += f". This server has no /completions endpoint; {LETTER_HINT}, or set api=chat for generation"
        return ModelError(message)

    async def _pick(self) -> _Endpoint:
        """The live endpoint with the fewest outstanding requests; waits out Retry-After and dead pauses."""
        while True:
            now = time.monotonic()
            # A dead endpoint whose pause is over gets this request as a probe; the others wait for its verdict.
            due = [e for e in self._endpoints if e.dead() and e.dead_until <= now and not e.probing]
            if due:
                due[0].probing = True
                return due[0]
            ready = [e for e in self._endpoints if not e.dead() and e.not_before <= now]
            if ready:
                return min(ready, key=lambda e: e.outstanding)
            if all(e.dead() for e in self._endpoints):
                since = min(e.dead_since for e in self._endpoints if e.dead_since is not None)
                if now - since > self.options.dead_endpoint_timeout:
                    raise ModelError(f"no endpoint of {self.model} has accepted a connection for "
                                     f"{now - since:.0f} s: {', '.join(self.base_urls)}")
            wake = min(max(e.not_before, e.dead_until if e.dead() else 0.0) for e in self._endpoints)
            await asyncio.sleep(min(0.5, max(0.005, wake - now)))

    def _mark_dead(self, endpoint: _Endpoint) -> None:
        now = time.monotonic()
        if endpoint.dead_since is None:
            endpoint.dead_since = now
        endpoint.failures += 1
        endpoint.dead_until = now + min(10.0, 0.25 * 2 ** (endpoint.failures - 1))

    @staticmethod
    def _mark_alive(endpoint: _Endpoint) -> None:
        endpoint.dead_since = None
        endpoint.failures = endpoint.drops_in_row = 0

    def _count(self, raw: dict[str, Any]) -> None:
        usage = raw.get("usage") if isinstance(raw.get("usage"), dict) else {}
        with self._lock:
            self._counters.requests += 1
            self._counters.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self._counters.completion_tokens += int(usage.get("completion_tokens") or 0)

    # -- generation -----------------------------------------------------------------------------------------
    async def _generate_one(self, request: GenerateRequest, n: int) -> list[Generation]:
        params: dict[str, Any] = {"model": self.model, "temperature": request.temperature}
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        if n > 1:
            params["n"] = n
        if request.messages is not None or self.options.api == "chat":
            messages = ([{"role": m.role, "content": m.content} for m in request.messages]
                        if request.messages is not None else [{"role": "user", "content": request.prompt}])
            params["messages"] = messages
            params[self.options.max_tokens_param] = request.max_tokens
            if self.options.generation_logprobs:
                params.update(logprobs=True, top_logprobs=1)  # llama.cpp's server returns none without top_logprobs
            return await self._call("chat", params, lambda raw: _chat_generations(raw, n))
        params.update(prompt=request.prompt, max_tokens=request.max_tokens)
        if self.options.generation_logprobs:
            params["logprobs"] = 0
        return await self._call("completions", params, lambda raw: _completion_generations(raw, n))

    # -- loglikelihood over /completions with echo ----------------------------------------------------------
    async def _echo(self, prompt: str) -> tuple[list[str], list[float | None], list[dict[str, float] | None],
                                                list[int]]:
        """Echoed prompt tokens, their logprobs, top-1 alternatives and character offsets (prompt part only)."""
        params = {"model": self.model, "prompt": prompt, "echo": True, "logprobs": 1, "temperature": 0.0,
                  "max_tokens": self._echo_max_tokens or 0}
        return await self._call("completions", params, lambda raw: _echoed(raw, prompt))

    async def _echo_loglikelihood(self, request: LoglikelihoodRequest) -> LoglikelihoodResult:
        tokens, logprobs, tops, offsets = await self._echo(request.context + request.continuation)
        boundary = len(request.context)
        # The continuation's tokens: those ending after the context (a token spanning the join counts, as when
        # the context's trailing space moves to the continuation).
        picked = [i for i, (tok, start) in enumerate(zip(tokens, offsets)) if start + len(tok) > boundary]
        if not picked or picked[0] == 0:
            raise ModelError(f"{self.model}: the echoed tokens do not separate context and continuation "
                             f"{request.continuation!r}")
        total, greedy = 0.0, True
        for i in picked:
            value = logprobs[i]
            if value is None:
                raise ModelError(f"{self.model}: the server returned no log-probability for prompt token {i}")
            total += value
            top = tops[i]
            if not top:
                raise ModelError(f"{self.model}: the server returned no top_logprobs for prompt token {i}, "
                                 "so greedy matches cannot be told")
            greedy = greedy and value >= max(top.values()) - 1e-6
        return LoglikelihoodResult(logprob=total, is_greedy=greedy, n_tokens=len(picked))

    async def _verify_echo(self) -> None:
        """Refuse servers whose echoed prompt logprobs disagree with their own logprobs of generated tokens.

        The server generates a few greedy tokens after a fixed prompt, reporting their logprobs; then it scores
        prompt + those tokens with echo. A correct server returns the same numbers both ways; llama.cpp's
        server, for one, returns wrong echo logprobs and is caught here.
        """
        params = {"model": self.model, "prompt": ECHO_PROBE_PROMPT, "max_tokens": 3, "temperature": 0.0,
                  "logprobs": 1}
        generated = await self._call("completions", params, _generated_tokens)
        text = "".join(tok for tok, _ in generated)
        self._echo_max_tokens = 0
        try:
            tokens, logprobs, _, offsets = await self._echo(ECHO_PROBE_PROMPT + text)
        except ModelError as exc:
            if not (isinstance(exc.__cause__, _HttpStatus) and exc.__cause__.status in (400, 422)):
                raise
            self._echo_max_tokens = 1  # some servers refuse max_tokens=0; the extra token is cut by offset
            tokens, logprobs, _, offsets = await self._echo(ECHO_PROBE_PROMPT + text)
        if any(v is None for v in logprobs[1:]):
            raise ModelError(f"{self.model}: the server's echo omits prompt log-probabilities; it cannot score "
                             f"loglikelihood requests; {LETTER_HINT}")
        tail = [i for i, start in enumerate(offsets) if start >= len(ECHO_PROBE_PROMPT)]
        compared = 0
        for i, (token, expected) in zip(tail, generated):
            if tokens[i] != token:
                break  # tokenisation of the joined text diverged; later positions are not comparable
            got = logprobs[i]
            assert got is not None
            if abs(got - expected) > ECHO_PROBE_TOLERANCE:
                self._echo_max_tokens = None
                raise ModelError(
                    f"{self.model}: this server's echoed prompt log-probabilities are wrong: it scores "
                    f"{token!r} as {got:.3f} when echoing but {expected:.3f} when generating it (llama.cpp's "
                    f"server is known to do this). Refusing to return such numbers; use a server with correct "
                    f"prompt logprobs (vLLM, `lmaudit serve`), or {LETTER_HINT}")
            compared += 1
        if compared == 0:
            raise ModelError(f"{self.model}: could not check the server's echoed log-probabilities (its tokens "
                             f"of the probe did not line up); set verify_echo=false to trust them anyway")

    # -- letter-choice MCQ on chat endpoints ----------------------------------------------------------------
    def _letter_jobs(self, requests: Sequence[LoglikelihoodRequest]) -> dict[int, Callable[[], Awaitable[Any]]]:
        by_context: dict[str, list[str]] = {}
        for index, request in enumerate(requests):
            letter = request.continuation.strip()
            if not re.fullmatch(r"[A-Za-z0-9]", letter):
                raise ModelError(f"loglikelihood=letters scores single option letters; request {index}'s "
                                 f"continuation {request.continuation!r} is not one (use loglikelihood=echo "
                                 "on a server with /completions for free-text choices)")
            options = by_context.setdefault(request.context, [])
            if letter not in options:
                options.append(letter)
        answers: dict[str, asyncio.Future] = {}

        async def job(request: LoglikelihoodRequest) -> LoglikelihoodResult:
            # The first request of a context asks; its siblings await the same answer (one call per question).
            context = request.context
            if context not in answers:
                answers[context] = asyncio.ensure_future(self._letter_distribution(context, by_context[context]))
            scores = await answers[context]
            logprob, greedy = scores[request.continuation.strip()]
            return LoglikelihoodResult(logprob=logprob, is_greedy=greedy, n_tokens=1)

        return {i: (lambda r=r: job(r)) for i, r in enumerate(requests)}

    async def _letter_distribution(self, context: str, letters: list[str]) -> dict[str, tuple[float, bool]]:
        params: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": context}],
                                  "temperature": 0.0, "logprobs": True, "top_logprobs": self.options.top_logprobs}
        params[self.options.max_tokens_param] = 1
        top = await self._call("chat", params, _first_token_top)
        best = max(top, key=lambda t: t[1])[0].strip() if top else ""
        mass = {letter: 0.0 for letter in letters}
        for token, logprob in top:
            if token.strip() in mass:
                mass[token.strip()] += math.exp(logprob)
        listed = sum(math.exp(lp) for _, lp in top)
        missing = [letter for letter, p in mass.items() if p == 0.0]
        # A letter outside the top-k has at most the smallest listed probability and at most its share of the
        # unlisted mass; take the smaller bound so it never outranks a listed letter.
        floor = min([min((lp for _, lp in top), default=-30.0),
                     math.log(max(1e-30, 1.0 - listed) / max(1, len(missing)))])
        with self._lock:
            self._letter_masses.append(max(0.0, 1.0 - sum(mass.values())))
            self._letters_missing += len(missing)
        return {letter: (math.log(p) if p > 0 else floor, letter == best) for letter, p in mass.items()}


def _shutdown(loop: asyncio.AbstractEventLoop, thread: threading.Thread, clients: list[Any]) -> None:
    """Close the SDK clients on their own loop, then stop it (a finalizer: it must not reference the model)."""
    async def close_all() -> None:
        for client in clients:
            await client.close()

    if threading.current_thread() is thread:  # collected on its own loop: it cannot wait for itself
        loop.call_soon(loop.stop)
        return
    if loop.is_running():
        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
    loop.close()


# -- response parsing: plain JSON in; anything malformed raises (KeyError, TypeError, _Malformed) and is retried --

def _choices(raw: dict[str, Any], n: int) -> list[dict[str, Any]]:
    choices = sorted(raw["choices"], key=lambda c: c["index"])
    if len(choices) != n:
        raise _Malformed(f"expected {n} choices, got {len(choices)}")
    return choices


def _floats(values: Any) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def _completion_generations(raw: dict[str, Any], n: int) -> list[Generation]:
    gens = []
    for choice in _choices(raw, n):
        if not isinstance(choice["text"], str):
            raise _Malformed("choice without text")
        logprobs = choice.get("logprobs") or {}
        gens.append(Generation(text=choice["text"], finish_reason=str(choice.get("finish_reason") or "stop"),
                               token_logprobs=_floats(logprobs.get("token_logprobs"))))
    return gens


def _chat_generations(raw: dict[str, Any], n: int) -> list[Generation]:
    gens = []
    for choice in _choices(raw, n):
        content = choice["message"].get("content")
        if content is not None and not isinstance(content, str):
            raise _Malformed("message content is not text")
        tokens = (choice.get("logprobs") or {}).get("content")
        gens.append(Generation(text=content or "", finish_reason=str(choice.get("finish_reason") or "stop"),
                               token_logprobs=_floats(None if tokens is None else [t["logprob"] for t in tokens])))
    return gens


def _generated_tokens(raw: dict[str, Any]) -> list[tuple[str, float]]:
    logprobs = _choices(raw, 1)[0].get("logprobs")
    if not logprobs or not logprobs.get("tokens"):
        raise ModelError("the server returned no logprobs for generated tokens; it cannot score "
                         f"loglikelihood requests; {LETTER_HINT}")
    return [(t, float(v)) for t, v in zip(logprobs["tokens"], logprobs["token_logprobs"])]


def _echoed(raw: dict[str, Any], prompt: str) -> tuple[list[str], list[float | None],
                                                       list[dict[str, float] | None], list[int]]:
    logprobs = _choices(raw, 1)[0].get("logprobs")
    if not logprobs or logprobs.get("tokens") is None or logprobs.get("token_logprobs") is None:
        raise ModelError("the server's /completions returned no echo logprobs; it cannot score loglikelihood "
                         f"requests; {LETTER_HINT}")
    tokens, values = list(logprobs["tokens"]), list(logprobs["token_logprobs"])
    offsets = logprobs.get("text_offset")
    if not offsets:  # derive offsets where the server leaves them out and the tokens spell the text
        offsets, position = [], 0
        for token in tokens:
            offsets.append(position)
            position += len(token)
        if not "".join(tokens).startswith(prompt):
            raise ModelError("the server's echoed tokens do not spell the prompt and it gives no text offsets; "
                             "cannot locate the continuation")
    if len(offsets) != len(tokens) or len(values) != len(tokens):
        raise _Malformed("echo logprob lists of different lengths")
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    keep = [i for i, start in enumerate(offsets) if start < len(prompt)]  # drop any generated token
    return ([tokens[i] for i in keep], [values[i] for i in keep], [tops[i] for i in keep],
            [offsets[i] for i in keep])


def _first_token_top(raw: dict[str, Any]) -> list[tuple[str, float]]:
    content = (_choices(raw, 1)[0].get("logprobs") or {}).get("content")
    if not content:
        raise ModelError("the chat endpoint returned no logprobs; loglikelihood=letters needs logprobs and "
                         "top_logprobs on /chat/completions")
    first = content[0]
    return ([(t["token"], float(t["logprob"])) for t in first.get("top_logprobs") or []]
            or [(first["token"], float(first["logprob"]))])


# -- factory ------------------------------------------------------------------------------------------------

def load_openai(rest: str, **options: Any) -> OpenAIModel:
    """openai:<model>@<base_url>[,<base_url>...] with options (see Options)."""
    model, urls = parse_spec(rest)
    return OpenAIModel(model, urls, _parse_options(options))


# Name every option in the signature so callers that filter a shared option set by signature (the CLI passes
# batch_size to every backend) hand this factory only what it takes.
load_openai.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("rest", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)]
    + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
       for name, f in Options.__dataclass_fields__.items()])
