"""Shared by the server tests: `lmaudit serve` in a thread of the test process, recording what clients send.

The server is a real aiohttp server on 127.0.0.1 running the application `lmaudit serve` runs, over a model the
test process already holds; tests/serve/test_serve_cli.py starts the real command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lmaudit.serve import create_server
from lmaudit.testing.background import BackgroundServer

MODEL_NAME = "smollm2"


@dataclass
class Served:
    root: str  # http://127.0.0.1:PORT
    server: Any = None  # the lmaudit.serve.app.Server (its engine's stats count the model's work)
    bodies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, JSON body) as received

    @property
    def v1(self) -> str:
        return self.root + "/v1"


def start_server(model: Any, **options: Any) -> tuple[BackgroundServer, Served]:
    served = Served("")

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST":
            try:
                served.bodies.append((request.path, json.loads(await request.read())))
            except ValueError:
                served.bodies.append((request.path, {}))
        return await handler(request)

    def app() -> web.Application:
        served.server = create_server(model, MODEL_NAME, **options)
        application = served.server.app()
        application.middlewares.insert(0, record)
        return application

    background = BackgroundServer(app).start()
    served.root = background.url
    return background, served
