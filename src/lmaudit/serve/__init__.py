"""`lmaudit serve`: any white-box lmaudit model behind an OpenAI-compatible HTTP API, with correct logprobs.

    from lmaudit.serve import serve
    serve(load_model("smollm2"), name="smollm2", port=8000)     # blocks; prints the base URL once listening

`create_app(model, name)` gives the aiohttp application (for tests and embedding); `Engine` scores and generates
(engine.py), the routes live in app.py, completions.py and chat.py. See docs/api-backend.md, "lmaudit serve".
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import TYPE_CHECKING, Any

from lmaudit.models.base import Model, require_white_box

if TYPE_CHECKING:
    from aiohttp import web

    from lmaudit.serve.app import Server

__all__ = ["create_app", "create_server", "is_loopback", "serve"]


def is_loopback(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP))
    except (socket.gaierror, ValueError):
        return False


def create_server(model: Model, name: str, *, chat_only: bool = False, api_key: str | None = None,
                  cache_entries: int = 8) -> Server:
    """The server object for a white-box model; `.app()` builds its aiohttp application."""
    from lmaudit.serve.app import Server
    from lmaudit.serve.engine import Engine

    white_box = require_white_box(model, "lmaudit serve")
    return Server(Engine(white_box, cache_entries), name, chat_only=chat_only, api_key=api_key)


def create_app(model: Model, name: str, **options: Any) -> web.Application:
    return create_server(model, name, **options).app()


def serve(model: Model, *, name: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          chat_only: bool = False, api_key: str | None = None, threads: int | None = None) -> None:
    """Serve until interrupted. Prints one line with the base URL once listening (port 0 picks a free one)."""
    from aiohttp import web

    if threads:
        import torch

        torch.set_num_threads(threads)  # on a shared machine fewer threads than cores avoids spin-wait stalls
    server = create_server(model, name or model.name, chat_only=chat_only, api_key=api_key)
    if not is_loopback(host):
        print(f"lmaudit serve: warning: listening on {host}, reachable beyond this machine", file=sys.stderr)
    sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    url_host = f"[{host}]" if ":" in host else host
    print(f"lmaudit serve: {server.name} on http://{url_host}:{sock.getsockname()[1]}/v1", flush=True)
    web.run_app(server.app(), sock=sock, print=None, access_log=None, handle_signals=True)
