"""The aiohttp application: OpenAI-compatible routes, vLLM's tokenizer routes, auth, errors, streaming.

Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (see completions.py and chat.py), and
vLLM's POST /tokenize, POST /detokenize, GET /tokenizer_info (lm-eval's `local-completions` finds them and then
needs no local tokenizer), GET /health. Model work runs on one worker thread, one request at a time, so torch
calls are serialised and the engine's prefix cache needs no lock. A streamed response is fed from that thread
through a queue; a client that goes away stops its generation at the next token.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lmaudit.core.errors import LmauditError
from lmaudit.serve import chat, completions
from lmaudit.serve.engine import Cancelled, Engine
from lmaudit.serve.protocol import BadRequest, chat_body, completion_body, field

MAX_BODY = 32 << 20
_END = object()  # the worker's last word on a stream


def _error(message: str, status: int, param: str | None = None) -> web.Response:
    kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}.get(status,
                                                                                                  "server_error")
    return web.json_response({"error": {"message": message, "type": kind, "param": param, "code": None}},
                             status=status)


def _sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class Server:
    def __init__(self, engine: Engine, name: str, *, chat_only: bool = False, api_key: str | None = None):
        self.engine = engine
        self.name = name
        self.chat_only = chat_only
        self._api_key = api_key
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lmaudit-serve")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        if not self.chat_only:
            app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_post("/detokenize", self.detokenize)
        app.router.add_get("/tokenizer_info", self.tokenizer_info)
        app.on_cleanup.append(self._stop_worker)
        return app

    async def _stop_worker(self, _app: web.Application) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._api_key is not None and request.path != "/health":
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(sent.encode(), self._api_key.encode()):
                return _error("invalid API key", 401)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _error(f"no route {request.method} {request.path}", 404)
        except web.HTTPMethodNotAllowed:
            return _error(f"{request.method} is not allowed on {request.path}", 405)
        except web.HTTPRequestEntityTooLarge:
            return _error(f"the body is larger than {MAX_BODY >> 20} MiB", 413)
        except web.HTTPException:
            raise
        except BadRequest as exc:
            return _error(str(exc), exc.status, exc.param)
        except LmauditError as exc:  # what the model cannot do (a chat request to a model without a template)
            return _error(str(exc), 400)
        except Exception as exc:  # noqa: BLE001 - a client gets an OpenAI error; the operator the traceback
            traceback.print_exc()
            return _error(f"internal error: {type(exc).__name__}: {exc}", 500)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        model = body.get("model")
        if model is not None and model != self.name:  # one model: a request may leave it out
            raise BadRequest(f"model '{model}' does not exist; this server serves '{self.name}'", "model", 404)
        return body

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    # -- information ------------------------------------------------------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        return web.Response(text="")

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.name, "object": "model", "created": 0, "owned_by": "lmaudit",
             "max_model_len": self.engine.max_length}]})

    # -- generation routes ------------------------------------------------------------------------------
    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = completion_body(await self._body(request), self.engine.vocab_size)
        job = await self._run(completions.CompletionJob, self.engine, body)
        return await self._respond(request, job, "text_completion", "cmpl", completions.merge)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = chat_body(await self._body(request))
        job = await self._run(chat.ChatJob, self.engine, body)
        return await self._respond(request, job, "chat.completion", "chatcmpl", chat.merge)

    async def _respond(self, request: web.Request, job: Any, kind: str, prefix: str,
                       merge: Callable[[list[Any]], list[Any]]) -> web.StreamResponse:
        head = {"id": f"{prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()),
                "model": self.name}
        if not job.body.options.stream:
            updates: list[Any] = []
            await self._run(job.run, updates.append, lambda: None)
            return web.json_response({**head, "choices": merge(updates), "usage": job.usage})
        return await self._stream(request, job, head)

    async def _stream(self, request: web.Request, job: Any, head: dict[str, Any]) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        gone = threading.Event()

        def check() -> None:
            if gone.is_set():
                raise Cancelled

        def work() -> None:
            try:
                job.run(lambda update: loop.call_soon_threadsafe(queue.put_nowait, update), check)
                loop.call_soon_threadsafe(queue.put_nowait, _END)
            except Cancelled:
                pass
            except Exception as exc:  # noqa: BLE001 - after the headers went out, an error can only be an event
                traceback.print_exc()
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        if head["object"] == "chat.completion":
            head = {**head, "object": "chat.completion.chunk"}
        usage_field = {"usage": None} if job.body.options.include_usage else {}
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        running = loop.run_in_executor(self._worker, work)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, Exception):
                    await response.write(_sse({"error": {"message": f"generation failed: {item}",
                                                         "type": "server_error", "param": None, "code": None}}))
                    break
                await response.write(_sse({**head, "choices": [item], **usage_field}))
            else:
                if job.body.options.include_usage:
                    await response.write(_sse({**head, "choices": [], "usage": job.usage}))
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client left (mid-stream, or right after [DONE]): nothing is left to tell it
        finally:
            gone.set()  # the worker stops at its next token, if it is still generating
            await asyncio.shield(running)
        return response

    # -- vLLM's tokenizer routes (lm-eval's remote tokenizer) ---------------------------------------------
    async def tokenize(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        special = field(body, "add_special_tokens", bool, True)
        if "messages" in body:
            messages = chat_body({"messages": body["messages"]}).messages
            ids = await self._run(self.engine.encode_chat, messages)
        else:
            prompt = field(body, "prompt", str, None)
            if prompt is None:
                raise BadRequest("'prompt' (a string) or 'messages' is required", "prompt")
            ids = await self._run(self.engine.model.encode, prompt, None if special else False)
        return web.json_response({"tokens": ids, "count": len(ids), "max_model_len": self.engine.max_length})

    async def detokenize(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool)
                                                   and 0 <= t < self.engine.vocab_size for t in tokens):
            raise BadRequest(f"'tokens' must be a list of token ids (0-{self.engine.vocab_size - 1})", "tokens")
        text = await self._run(lambda: "".join(self.engine.spell(tokens)))
        return web.json_response({"prompt": text})

    async def tokenizer_info(self, _request: web.Request) -> web.Response:
        tokenizer = self.engine.tokenizer
        return web.json_response({
            "tokenizer_class": type(tokenizer).__name__, "model_max_length": self.engine.max_length,
            "bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token,
            "chat_template": getattr(tokenizer, "chat_template", None)})
