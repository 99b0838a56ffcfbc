"""The `openai` backend: any OpenAI-compatible HTTP server (OpenAI, vLLM, llama.cpp, `lmaudit serve`, ...).

Spec: `openai:<model>@<base_url>[,<base_url>...]`, e.g. `openai:smollm2@http://127.0.0.1:8000/v1`.

Modules, top down: `model` (the Model contract), `scoring` (echo log-likelihood, option letters) and `parsing`
(response bodies), `loop` (the synchronous contract over a background event loop), `scheduling` (congestion
window, endpoint routing, retries), `transport` (the two HTTP clients behind one interface), `usage` (tokens and
cost) and `options` (spec, options, key). docs/api-backend.md describes the behaviour.
"""

from lmaudit.models.openai.model import OpenAIModel, load_openai
from lmaudit.models.openai.options import DUMMY_KEY, KEY_VARIABLES, Options, parse_options, parse_spec
from lmaudit.models.openai.scheduling import CallAborted

__all__ = ["CallAborted", "DUMMY_KEY", "KEY_VARIABLES", "OpenAIModel", "Options", "load_openai", "parse_options",
           "parse_spec"]
