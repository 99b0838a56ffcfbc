"""The synchronous contract over an asynchronous client: a private event loop in a background thread.

The loop lives as long as the model, so the HTTP clients and their connection pools are created once, on it,
and reused by every call. A call submits all its requests at once; answers cross back to the caller's thread
through a queue, in batches (one wake-up per loop iteration, not per answer: each is a GIL hand-over), and the
caller delivers each the moment it arrives, so a runner's hook persists it in the caller's own thread (its SQLite
connection never crosses threads).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from lmaudit.core.errors import LmauditError, ModelError
from lmaudit.core.types import Request, Response, request_key
from lmaudit.models.openai.scheduling import CallAborted

T = TypeVar("T")
Job = Callable[[], Awaitable[Any]]


class _RequestFailed(LmauditError):
    """One request gave up; the batch reports it after every other request has been delivered."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


class LoopThread:
    """An event loop running in a daemon thread; `close()` (or collection, or exit) stops it."""

    def __init__(self, name: str):
        self._name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def running(self) -> bool:
        return self.loop is not None

    def start(self, owner: object, setup: Callable[[], Awaitable[list[Any]]]) -> None:
        """Start the loop and run `setup` on it; it returns the clients to close when `owner` goes away."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
        thread.start()
        self.loop, self._thread = loop, thread
        clients = asyncio.run_coroutine_threadsafe(setup(), loop).result()
        self._finalizer = weakref.finalize(owner, _shutdown, loop, thread, clients)

    def submit(self, coroutine: Awaitable[T]) -> "concurrent.futures.Future[T]":
        assert self.loop is not None, "start the loop first"
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self.loop = self._thread = self._finalizer = None

    def run(self, model: str, requests: Sequence[Request], jobs: dict[int, Job],
            hook: Callable[[int, Response], None] | None, scrub: Callable[[str], str]) -> list[Any]:
        """Run the jobs concurrently; identical requests are sent once. `hook(index, answer)` runs for each
        answer as it arrives. Requests that gave up are reported after all the others were delivered; a
        `CallAborted` stops the call once the answers that arrived with it are delivered."""
        owners: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            owners.setdefault(request_key(request), []).append(index)
        unique = list(owners.values())
        arrivals: queue.SimpleQueue = queue.SimpleQueue()
        batch = self.submit(_gather([(indices, jobs[indices[0]]) for indices in unique], arrivals, scrub))
        results: list[Any] = [None] * len(requests)
        failures: list[_RequestFailed] = []
        try:
            received = 0
            while received < len(unique):
                try:
                    answers = arrivals.get(timeout=1.0)
                except queue.Empty:
                    if batch.done():
                        batch.result()  # raises what killed the batch
                    continue
                received += len(answers)
                stop: BaseException | None = None
                for indices, outcome in answers:
                    if isinstance(outcome, _RequestFailed):
                        failures.append(outcome)
                    elif isinstance(outcome, BaseException):
                        stop = stop or outcome
                    else:
                        for index in indices:
                            results[index] = outcome
                            if hook is not None:
                                hook(index, outcome)
                if stop is not None:
                    raise stop
            batch.result()
        finally:
            if not batch.done():
                batch.cancel()
        if failures:
            failures.sort(key=lambda f: f.index)
            answered = len(unique) - len(failures)
            raise ModelError(f"{len(failures)} of {len(unique)} distinct requests to {model} failed "
                             f"({answered} answered were delivered); first: {failures[0]}")
        return results


async def _gather(work: list[tuple[list[int], Job]], arrivals: queue.SimpleQueue,
                  scrub: Callable[[str], str]) -> None:
    # Answers that arrive in the same loop iteration cross to the caller's thread together.
    ready: list[tuple[list[int], Any]] = []
    loop = asyncio.get_running_loop()

    def flush() -> None:
        arrivals.put(list(ready))
        ready.clear()

    def deliver(item: tuple[list[int], Any]) -> None:
        if not ready:
            loop.call_soon(flush)
        ready.append(item)

    async def one(indices: list[int], job: Job) -> None:
        try:
            deliver((indices, await job()))
        except CallAborted as exc:
            deliver((indices, exc))
        except LmauditError as exc:
            deliver((indices, _RequestFailed(indices[0], f"request {indices[0]}: {scrub(str(exc))}")))
        except Exception as exc:  # a bug, not a fault: surface it in the caller's thread
            deliver((indices, exc))

    tasks = [asyncio.ensure_future(one(indices, job)) for indices, job in work]
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        raise


def _shutdown(loop: asyncio.AbstractEventLoop, thread: threading.Thread, clients: list[Any]) -> None:
    """Close the clients on their own loop, then stop it (a finalizer: it must not reference the model)."""
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
