"""Scheduling and retries: how many requests are in flight, which endpoint takes each, and what a fault costs.

- A congestion window caps requests in flight (`max_concurrency`); a 429 halves it (at most once a second) and
  successes grow it back.
- With several base URLs, each request goes to the live endpoint with the fewest outstanding requests; one that
  refuses connections (or loses several requests in a row) leaves the rotation and is probed again after
  growing pauses.
- Transient faults (429, 5xx, 408/409, timeouts, resets, malformed bodies) are retried with exponential back-off
  and jitter, a bounded number of times; Retry-After is honoured.
- Faults no retry can fix (a wrong key: 401/403; a host that does not resolve; a URL the client refuses) stop
  the whole call at once with `CallAborted`: every request would meet the same answer.
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lmaudit.core.errors import ModelError
from lmaudit.core.redact import redact
from lmaudit.models.openai.options import KEY_VARIABLES, LETTER_HINT, Options
from lmaudit.models.openai.transport import ConnectFailed, Dropped, HttpStatus, Malformed, Transport, Unfixable
from lmaudit.models.openai.usage import Usage

T = TypeVar("T")
DROPS_BEFORE_DEAD = 5  # requests in a row lost on an endpoint that still accepts connections: treat it as dead
ABORTING_STATUSES = (401, 403)  # the key is wrong or lacks access: the same for every request


class CallAborted(ModelError):
    """A fault no retry can fix: the whole call stops (answers that arrived before it are delivered)."""


class Retryable(Exception):
    """A transient failure: try again after `delay` seconds (None: the usual back-off)."""

    def __init__(self, what: str, delay: float | None = None):
        super().__init__(what)
        self.what = what
        self.delay = delay


class Window:
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
class Endpoint:
    url: str
    transport: Transport
    outstanding: int = 0
    not_before: float = 0.0  # Retry-After: no request before this (monotonic seconds)
    dead_until: float = 0.0  # refused connections: out of rotation until then, then one probe
    dead_since: float | None = None
    failures: int = 0
    drops_in_row: int = 0  # sent but unanswered, with no answer in between
    probing: bool = False

    def dead(self) -> bool:
        return self.dead_since is not None

    def mark_dead(self) -> None:
        now = time.monotonic()
        if self.dead_since is None:
            self.dead_since = now
        self.failures += 1
        self.dead_until = now + min(10.0, 0.25 * 2 ** (self.failures - 1))

    def mark_alive(self) -> None:
        self.dead_since = None
        self.failures = self.drops_in_row = 0


class Scheduler:
    """Sends one request at a time through the window to an endpoint, retrying what a retry can fix.

    It holds no reference to the model, so a model nobody uses is freed (and its connections closed) at once.
    """

    def __init__(self, model: str, options: Options, usage: Usage, scrub: Callable[[str], str]):
        self.model, self.options, self.usage = model, options, usage
        self._scrub = scrub  # the key and URL credentials out of server messages
        self.endpoints: list[Endpoint] = []
        self.window: Window | None = None  # made with the endpoints, on the loop

    def connect(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = list(endpoints)
        self.window = Window(self.options.max_concurrency)

    async def call(self, route: str, params: dict[str, Any], parse: Callable[[Any], T]) -> T:
        """POST one request to the least busy live endpoint, retrying transient faults; `parse` checks the body."""
        assert self.window is not None, "connect() before the first call"
        path = "/chat/completions" if route == "chat" else "/completions"
        attempt = 0
        while True:
            await self.window.acquire()
            throttled = False
            delay: float | None = None
            endpoint: Endpoint | None = None
            try:
                endpoint = await self._pick()
                endpoint.outstanding += 1
                try:
                    raw = await endpoint.transport.post(path, params)
                    if not isinstance(raw, dict):
                        raise Malformed("the body is not a JSON object")
                    result = parse(raw)
                except HttpStatus as exc:
                    if exc.status == 429:
                        throttled = True
                        if exc.retry_after:
                            endpoint.not_before = max(endpoint.not_before, time.monotonic() + exc.retry_after)
                        raise Retryable("429", exc.retry_after) from exc
                    if exc.status >= 500 or exc.status in (408, 409):
                        raise Retryable(str(exc.status), exc.retry_after) from exc
                    error = self._client_error(path, exc)
                    if exc.status in ABORTING_STATUSES:
                        raise CallAborted(str(error)) from exc
                    raise error from exc
                except ConnectFailed as exc:
                    endpoint.mark_dead()
                    raise Retryable("connect") from exc
                except Dropped as exc:
                    endpoint.drops_in_row += 1
                    if endpoint.drops_in_row >= DROPS_BEFORE_DEAD:
                        endpoint.mark_dead()
                    raise Retryable(exc.what) from exc
                except Unfixable as exc:
                    self.usage.fault("unfixable")
                    raise CallAborted(f"{self.model}: {self._scrub(str(exc))} (not retried)") from exc
                except (Malformed, KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
                    raise Retryable("malformed") from exc  # ValueError covers undecodable JSON
                endpoint.mark_alive()
                self.usage.answered(raw)
                return result
            except Retryable as fault:
                self.usage.fault(fault.what)
                if attempt >= self.options.max_retries:
                    cause = fault.__cause__ or fault
                    raise ModelError(f"gave up after {attempt + 1} tries ({fault.what}): "
                                     f"{self._scrub(str(cause))}") from None
                delay = fault.delay
            finally:
                if endpoint is not None:
                    endpoint.outstanding -= 1
                    endpoint.probing = False
                self.window.release(throttled=throttled)
            attempt += 1
            self.usage.retry()
            if delay is None:
                backoff = min(self.options.retry_max_delay, self.options.retry_base_delay * 2 ** (attempt - 1))
                delay = backoff * random.uniform(0.5, 1.0)
            await asyncio.sleep(delay)

    def _client_error(self, path: str, exc: HttpStatus) -> ModelError:
        message = f"{self.model}: {path} answered {exc.status}: {self._scrub(str(exc))}"
        if exc.status in (401, 403):
            message += (f". Set the key in {self.options.api_key_env or ' or '.join(KEY_VARIABLES)} "
                        "(never on the command line)")
        elif path == "/completions" and exc.status in (404, 405, 501):
            message += f". This server has no /completions endpoint; {LETTER_HINT}, or set api=chat for generation"
        return ModelError(message)

    async def _pick(self) -> Endpoint:
        """The live endpoint with the fewest outstanding requests; waits out Retry-After and dead pauses."""
        while True:
            now = time.monotonic()
            # A dead endpoint whose pause is over gets this request as a probe; the others wait for its verdict.
            due = [e for e in self.endpoints if e.dead() and e.dead_until <= now and not e.probing]
            if due:
                due[0].probing = True
                return due[0]
            ready = [e for e in self.endpoints if not e.dead() and e.not_before <= now]
            if ready:
                return min(ready, key=lambda e: e.outstanding)
            if all(e.dead() for e in self.endpoints):
                since = min(e.dead_since for e in self.endpoints if e.dead_since is not None)
                if now - since > self.options.dead_endpoint_timeout:
                    raise ModelError(f"no endpoint of {self.model} has accepted a connection for "
                                     f"{now - since:.0f} s: {redact(', '.join(e.url for e in self.endpoints))}")
            wake = min(max(e.not_before, e.dead_until if e.dead() else 0.0) for e in self.endpoints)
            await asyncio.sleep(min(0.5, max(0.005, wake - now)))
