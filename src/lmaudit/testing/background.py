"""Run an aiohttp application on loopback in a daemon thread with its own event loop (tests, benches)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from lmaudit.core.errors import ConfigError

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


class BackgroundServer:
    """`with BackgroundServer(app_factory) as server:` serves at server.url until the block ends.

    Stopping closes the listening socket and every open connection, as a killed server would.
    """

    def __init__(self, app_factory: Callable[[], web.Application], port: int = 0, host: str = LOOPBACK):
        if not host.startswith("127."):
            raise ConfigError(f"test servers listen on loopback only, not {host}")
        self._factory = app_factory
        self._host, self._port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> "BackgroundServer":
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="lmaudit-test-server", daemon=True)
        self._thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._factory(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def call(self, coroutine: Awaitable[T], timeout: float = 30) -> T:
        """Run a coroutine on the server's loop (to read or change its state) and wait for it."""
        assert self._loop is not None, "server not started"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            self.call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
