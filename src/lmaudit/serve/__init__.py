"""`lmaudit serve`: put any lmaudit model behind an OpenAI-compatible HTTP API (see app.py)."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from typing import Any

from lmaudit.core.errors import ConfigError, ModelError


def is_loopback(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP))
    except (socket.gaierror, ValueError):
        return False


def serve(model_spec: str, *, name: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          chat_only: bool = False, api_key_env: str | None = None, threads: int | None = None,
          **model_options: Any) -> None:
    """Load the model and serve it until interrupted. Prints one line with the base URL once listening."""
    from aiohttp import web

    from lmaudit.models import load_model
    from lmaudit.models.hf import HFModel
    from lmaudit.serve.app import Server
    from lmaudit.serve.engine import Engine

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env {api_key_env}: that variable is not set")
    if not is_loopback(host):
        print(f"lmaudit serve: warning: listening on {host}, reachable beyond this machine", file=sys.stderr)
    if threads:
        import torch

        torch.set_num_threads(threads)  # on a shared machine fewer threads than cores avoids spin-wait stalls
    model = load_model(model_spec, **model_options)
    if not isinstance(model, HFModel):
        raise ModelError(f"lmaudit serve needs a model of the hf backend (smollm2, hf:, gguf:), not {model_spec}")
    server = Server(Engine(model), name or model_spec, chat_only=chat_only, api_key=api_key)
    sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    bound = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    print(f"lmaudit serve: {server.name} on http://{url_host}:{bound}/v1", flush=True)
    web.run_app(server.app(), sock=sock, print=None, access_log=None, handle_signals=True)
