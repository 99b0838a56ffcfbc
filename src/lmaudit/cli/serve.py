"""`lmaudit serve`: put a white-box lmaudit model behind an OpenAI-compatible HTTP API on this machine.

Mounted with `app.add_typer(serve.app, name="serve")`; the callback runs without a subcommand:
`lmaudit serve --model smollm2 --port 8000`.
"""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from lmaudit.cli.options import (
    ModelArgOpt,
    ModelOpt,
    cli_command,
    load_model_for_cli,
    new_app,
)

app = new_app("Serve a model over an OpenAI-compatible HTTP API: completions with correct echo logprobs and "
              "token-id prompts, chat completions, streaming, vLLM's tokenizer routes.", no_args_is_help=False)


@app.callback(invoke_without_command=True)
@cli_command
def serve_command(
    model: ModelOpt = "smollm2",
    model_arg: ModelArgOpt = [],
    name: Annotated[Optional[str], typer.Option(help="the model id clients send (default: the spec)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on; keep the default to stay on this machine")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one (printed)")] = 8000,
    chat_only: Annotated[bool, typer.Option(help="serve /v1/chat/completions only")] = False,
    api_key_env: Annotated[Optional[str], typer.Option(help="require the key held in this environment variable")]
    = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="torch threads (default: torch's choice)")] = None,
) -> None:
    """Load the model and serve it until Ctrl-C."""
    from lmaudit.core.errors import ConfigError
    from lmaudit.models.base import require_white_box
    from lmaudit.serve import serve

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env {api_key_env}: that variable is not set")
    loaded = require_white_box(load_model_for_cli(model, model_arg), "lmaudit serve")
    serve(loaded, name=name or model, host=host, port=port, chat_only=chat_only, api_key=api_key, threads=threads)
