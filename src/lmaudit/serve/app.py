"""`lmaudit serve`: an OpenAI-compatible HTTP server for any hf-backend model, with correct logprobs.

Routes: GET /v1/models, POST /v1/completions (prompt, max_tokens, temperature, seed, stop, n, echo, logprobs),
POST /v1/chat/completions (messages, max_tokens or max_completion_tokens, temperature, seed, stop, n, logprobs,
top_logprobs). Echoed prompt log-probabilities are the model's own, so `openai:<name>@<url>` scores exactly
what the hf backend scores on the same weights. Model work runs on one worker thread, one request at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import math
import time
import uuid
from typing import Any

from aiohttp import web

from lmaudit.serve.engine import TOP_K, Completion, Engine

MAX_BODY = 8 << 20
MAX_N = 16


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.param, self.status = param, status


def _error(message: str, status: int, param: str | None = None) -> web.Response:
    kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}.get(status, "error")
    return web.json_response({"error": {"message": message, "type": kind, "param": param, "code": None}},
                             status=status)


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any,
           check: Any = None, problem: str = "") -> Any:
    value = body.get(name, default)
    if value is None:
        value = default
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BadRequest(f"'{name}' must be {getattr(kind, '__name__', kind)}", name)
    if check is not None and not check(value):
        raise BadRequest(f"'{name}': {problem}", name)
    return value


def _stops(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > 4:
        raise BadRequest("'stop' must be a non-empty string or a list of at most 4 of them", "stop")
    return stops


class Server:
    def __init__(self, engine: Engine, name: str, *, chat_only: bool = False, api_key: str | None = None):
        self.engine = engine
        self.name = name
        self.chat_only = chat_only
        self._api_key = api_key
        # One thread: torch calls are serialised and the engine's prefix cache needs no lock.
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lmaudit-serve")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        if not self.chat_only:
            app.router.add_post("/v1/completions", self.completions)
        app.on_cleanup.append(self._stop_worker)
        return app

    async def _stop_worker(self, _app: web.Application) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._api_key is not None:
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(sent.encode(), self._api_key.encode()):
                return _error("invalid API key", 401)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _error(f"no route {request.method} {request.path}", 404)
        except web.HTTPMethodNotAllowed:
            return _error(f"{request.method} is not allowed on {request.path}", 405)
        except BadRequest as exc:
            return _error(str(exc), exc.status, exc.param)
        except ValueError as exc:
            return _error(str(exc), 400)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        model = body.get("model")
        if model != self.name:
            raise BadRequest(f"model '{model}' does not exist; this server serves '{self.name}'", "model", 404)
        return body

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.name, "object": "model", "created": 0, "owned_by": "lmaudit"}]})

    # -- /v1/completions --------------------------------------------------------------------------------
    async def completions(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p for p in prompts):
            raise BadRequest("'prompt' must be a non-empty string or a list of them", "prompt")
        settings = self._settings(body, default_max=16)
        echo = _field(body, "echo", bool, False)
        k = _field(body, "logprobs", int, None, lambda v: 0 <= v <= TOP_K, f"0-{TOP_K}")
        choices, usage = await self._run(self._complete_all, prompts, settings, echo, k)
        return web.json_response({"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
                                  "created": int(time.time()), "model": self.name, "choices": choices,
                                  "usage": usage})

    def _settings(self, body: dict[str, Any], default_max: int) -> dict[str, Any]:
        max_tokens = _field(body, "max_completion_tokens", int, None, lambda v: v >= 0, ">= 0")
        if max_tokens is None:
            max_tokens = _field(body, "max_tokens", int, default_max, lambda v: v >= 0, ">= 0")
        return {
            "max_tokens": max_tokens,
            "temperature": _field(body, "temperature", float, 1.0, lambda v: 0 <= v <= 2, "0-2"),
            "seed": _field(body, "seed", int, None),
            "stop": _stops(body),
            "n": _field(body, "n", int, 1, lambda v: 1 <= v <= MAX_N, f"1-{MAX_N}"),
        }

    def _complete_all(self, prompts: list[str], settings: dict[str, Any], echo: bool,
                      k: int | None) -> tuple[list[dict[str, Any]], dict[str, int]]:
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for prompt in prompts:
            ids = self.engine.encode_prompt(prompt)
            prompt_tokens += len(ids)
            if echo and k is not None:
                scored = self.engine.score(ids, need_next=settings["max_tokens"] > 0)
            for completion in self._samples(ids, settings):
                completion_tokens += len(completion.ids)
                choice: dict[str, Any] = {"index": len(choices), "finish_reason": completion.finish_reason,
                                          "text": (prompt if echo else "") + completion.text, "logprobs": None}
                if k is not None:
                    parts = ([self._echo_logprobs(ids, scored, k)] if echo else []) + [
                        self._generated_logprobs(completion, k, len(prompt) if echo else 0)]
                    choice["logprobs"] = {key: sum((p[key] for p in parts), []) for key in parts[0]}
                choices.append(choice)
        return choices, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + completion_tokens}

    def _samples(self, ids: list[int], settings: dict[str, Any]) -> list[Completion]:
        seed = settings["seed"]
        return [self.engine.complete(ids, max_tokens=settings["max_tokens"], temperature=settings["temperature"],
                                     seed=None if seed is None else seed + i, stop=settings["stop"])
                for i in range(settings["n"])]

    def _top(self, ids: list[int], values: list[float], k: int) -> dict[str, float]:
        top: dict[str, float] = {}
        for token_id, value in zip(ids[:k], values[:k]):
            text = self.engine.token_text(token_id)
            top[text] = max(value, top.get(text, -math.inf))
        return top

    def _echo_logprobs(self, ids: list[int], scored: Any, k: int) -> dict[str, list[Any]]:
        texts, offsets = self.engine.pieces(ids)
        top_ids, top_values = scored.top_ids[:, :k].tolist(), scored.top_logprobs[:, :k].tolist()
        tops: list[Any] = [None] + [self._top(top_ids[i], top_values[i], k) for i in range(1, len(ids))]
        return {"tokens": texts, "token_logprobs": list(scored.logprobs), "top_logprobs": tops,
                "text_offset": offsets}

    def _generated_logprobs(self, completion: Completion, k: int, shift: int) -> dict[str, list[Any]]:
        texts, offsets = self.engine.pieces(completion.ids) if completion.ids else ([], [])
        tops = [self._top(i, v, k) for i, v in zip(completion.top_ids, completion.top_logprobs)]
        count = len(texts)
        return {"tokens": texts, "token_logprobs": completion.logprobs[:count], "top_logprobs": tops[:count],
                "text_offset": [o + shift for o in offsets]}

    # -- /v1/chat/completions ---------------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise BadRequest("'messages' must be a non-empty list of {role, content} objects with text content",
                             "messages")
        settings = self._settings(body, default_max=256)
        want_logprobs = _field(body, "logprobs", bool, False)
        k = _field(body, "top_logprobs", int, 0, lambda v: 0 <= v <= TOP_K, f"0-{TOP_K}")
        if k and not want_logprobs:
            raise BadRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs")
        plain = [{"role": m["role"], "content": m["content"]} for m in messages]
        choices, usage = await self._run(self._chat_all, plain, settings, want_logprobs, k)
        return web.json_response({"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
                                  "created": int(time.time()), "model": self.name, "choices": choices,
                                  "usage": usage})

    def _chat_all(self, messages: list[dict[str, str]], settings: dict[str, Any], want_logprobs: bool,
                  k: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
        ids = self.engine.encode_chat(messages)
        choices, completion_tokens = [], 0
        for index, completion in enumerate(self._samples(ids, settings)):
            completion_tokens += len(completion.ids)
            logprobs = None
            if want_logprobs:
                texts, _ = self.engine.pieces(completion.ids) if completion.ids else ([], [])
                content = []
                for text, value, top_ids, top_values in zip(texts, completion.logprobs, completion.top_ids,
                                                             completion.top_logprobs):
                    alternatives = [{"token": self.engine.token_text(i), "logprob": v,
                                     "bytes": list(self.engine.token_text(i).encode())}
                                    for i, v in zip(top_ids[:k], top_values[:k])]
                    content.append({"token": text, "logprob": value, "bytes": list(text.encode()),
                                    "top_logprobs": alternatives})
                logprobs = {"content": content, "refusal": None}
            choices.append({"index": index, "finish_reason": completion.finish_reason, "logprobs": logprobs,
                            "message": {"role": "assistant", "content": completion.text}})
        return choices, {"prompt_tokens": len(ids), "completion_tokens": completion_tokens,
                         "total_tokens": len(ids) + completion_tokens}

