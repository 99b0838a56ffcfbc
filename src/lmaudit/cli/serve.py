"""`lmaudit serve`: put an lmaudit model behind an OpenAI-compatible HTTP API on this machine.

Mount with `app.add_typer(serve.app, name="serve")`; the callback runs without a subcommand:
`lmaudit serve --model smollm2 --port 8000`.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Serve a model over an OpenAI-compatible HTTP API (completions with correct echo "
                       "logprobs, chat completions with top_logprobs).")


@app.callback(invoke_without_command=True)
def serve_command(
    model: Annotated[str, typer.Option(help="model spec of the hf backend: smollm2, hf:<path|id>, gguf:<file>")]
    = "smollm2",
    name: Annotated[Optional[str], typer.Option(help="the model id clients send (default: the spec)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on; keep the default to stay on this machine")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one (printed)")] = 8000,
    chat_only: Annotated[bool, typer.Option(help="serve /v1/chat/completions only")] = False,
    api_key_env: Annotated[Optional[str], typer.Option(help="require the key held in this environment variable")]
    = None,
    threads: Annotated[Optional[int], typer.Option(help="torch threads (default: torch's choice)")] = None,
) -> None:
    """Load the model and serve it until Ctrl-C."""
    from lmaudit.core.errors import LmauditError
    from lmaudit.serve import serve

    try:
        serve(model, name=name, host=host, port=port, chat_only=chat_only, api_key_env=api_key_env, threads=threads)
    except LmauditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
