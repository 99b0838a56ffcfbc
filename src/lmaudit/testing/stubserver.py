"""A tiny, fast, deterministic OpenAI-compatible HTTP server for tests and benchmarks.

It runs no model: a "token" is a word with its leading whitespace, an answer is a seeded function of the
request, and the log-probability of a token is a hash of the text before it and the token. Echoed prompt
logprobs use the same function, so the backend's echo check passes (or, with `echo="wrong"`, fails as it
does on llama.cpp's server). It counts every request it receives and answers, can answer after a fixed
latency, can require an API key, and can stall after N answers (to kill a client at a known point).

    python -m lmaudit.testing.stubserver --port 0 --latency 0.1     # prints its base URL
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()
TOKEN = re.compile(r"\s*\S+|\s+")


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def token_logprob(prefix: str, token: str) -> float:
    digest = hashlib.sha256(f"{prefix}\x00{token}".encode()).digest()
    return -(int.from_bytes(digest[:4], "big") % 400) / 100 - 0.05


def body_key(body: bytes) -> str:
    """A request's identity: its canonical JSON (so key order and spacing do not matter)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        canonical = body.decode("latin-1")
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class StubServer:
    name: str = "stub"
    latency: float = 0.0
    chat_only: bool = False
    api_key: str | None = None
    echo: str = "correct"  # "correct" | "wrong" (off by one nat) | "none" (no prompt logprobs)
    stall_after: int | None = None  # answer this many requests, then hold every later one until release()
    received: Counter = field(default_factory=Counter)  # body key -> requests received
    answered: Counter = field(default_factory=Counter)  # body key -> answers sent
    seen_authorization: list[str] = field(default_factory=list)
    seen_organization: list[str] = field(default_factory=list)  # OpenAI-Organization and OpenAI-Project, "/"-joined
    in_flight: int = 0
    peak_in_flight: int = 0
    _release: asyncio.Event | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 << 20, middlewares=[self._gauge])
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/v1/chat/completions", self._chat)
        if not self.chat_only:
            app.router.add_post("/v1/completions", self._completions)
        return app

    async def release(self) -> None:
        """Stop stalling: held requests and later ones are answered."""
        self.stall_after = None
        if self._release is not None:
            self._release.set()

    def total_answered(self) -> int:
        return sum(self.answered.values())

    # -- plumbing ---------------------------------------------------------------------------------------
    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.name, "object": "model"}]})

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response({"received": sum(self.received.values()), "answered": self.total_answered(),
                                  "distinct": len(self.received)})

    @web.middleware
    async def _gauge(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def _admit(self, request: web.Request) -> tuple[str, dict[str, Any]] | web.Response:
        raw = await request.read()
        key = body_key(raw)
        self.received[key] += 1
        sent = request.headers.get("Authorization", "")
        self.seen_authorization.append(sent)
        self.seen_organization.append(
            f"{request.headers.get('OpenAI-Organization', '')}/{request.headers.get('OpenAI-Project', '')}")
        if self.api_key is not None and not hmac.compare_digest(sent.encode(), f"Bearer {self.api_key}".encode()):
            return web.json_response({"error": {"message": "invalid API key", "type": "authentication_error"}},
                                     status=401)
        body = json.loads(raw)
        if body.get("model") != self.name:
            return web.json_response({"error": {"message": f"no model {body.get('model')!r}"}}, status=404)
        if self.stall_after is not None and self.total_answered() >= self.stall_after:
            if self._release is None:
                self._release = asyncio.Event()
            await self._release.wait()
        if self.latency:
            await asyncio.sleep(self.latency)
        return key, body

    def _reply(self, key: str, payload: dict[str, Any]) -> web.Response:
        self.answered[key] += 1
        return web.json_response(payload)

    # -- answers ----------------------------------------------------------------------------------------
    @staticmethod
    def _words(seed_text: str, count: int) -> list[str]:
        rng = random.Random(hashlib.sha256(seed_text.encode()).digest())
        return [" " + rng.choice(WORDS) for _ in range(count)]

    def _generate(self, prompt: str, body: dict[str, Any], index: int) -> tuple[str, list[str], str]:
        seed = body.get("seed")
        temperature = float(body.get("temperature", 1.0) or 0.0)
        if temperature == 0:
            seed_text = prompt  # greedy: the same prompt always gives the same text
        else:
            seed_text = f"{prompt}|{seed if seed is not None else time.time_ns()}|{temperature}|{index}"
        count = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        words = self._words(seed_text, count)
        text, finish = "".join(words), "length"
        stops = body.get("stop") or []
        for stop in [stops] if isinstance(stops, str) else stops:
            if stop in text:
                text, finish = text[:text.index(stop)], "stop"
        return text, tokens(text), finish

    def _logprobs(self, prefix: str, toks: list[str], shift: float) -> tuple[list[float], list[int]]:
        values, offsets, position = [], [], 0
        for token in toks:
            values.append(token_logprob(prefix + "".join(toks)[:position], token) + shift)
            offsets.append(len(prefix) + position)
            position += len(token)
        return values, offsets

    async def _completions(self, request: web.Request) -> web.Response:
        admitted = await self._admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        key, body = admitted
        prompt = body["prompt"]
        n = int(body.get("n") or 1)
        want = body.get("logprobs")
        choices, completion_tokens = [], 0
        for index in range(n):
            text, generated, finish = self._generate(prompt, body, index)
            completion_tokens += len(generated)
            choice: dict[str, Any] = {"index": index, "text": text, "finish_reason": finish, "logprobs": None}
            if want is not None:
                gen_values, gen_offsets = self._logprobs(prompt, generated, 0.0)
                toks, values, offsets = generated, list(gen_values), gen_offsets
                if body.get("echo"):
                    choice["text"] = prompt + text
                    ptoks = tokens(prompt)
                    if self.echo == "none":
                        pvalues: list[float | None] = [None] * len(ptoks)
                    else:
                        shift = -1.0 if self.echo == "wrong" else 0.0
                        pvalues = [None] + self._logprobs("", ptoks, shift)[0][1:]
                    toks = ptoks + generated
                    values = pvalues + values  # type: ignore[operator]
                    offsets = self._logprobs("", ptoks, 0.0)[1] + gen_offsets
                # Every token is its position's best alternative: the top-1 list holds just it.
                tops = [None if v is None else {t: v} for t, v in zip(toks, values)]
                choice["logprobs"] = {"tokens": toks, "token_logprobs": values, "top_logprobs": tops,
                                      "text_offset": offsets}
            choices.append(choice)
        usage = {"prompt_tokens": len(tokens(prompt)), "completion_tokens": completion_tokens,
                 "total_tokens": len(tokens(prompt)) + completion_tokens}
        return self._reply(key, {"id": f"cmpl-{key[:12]}", "object": "text_completion", "created": 0,
                                 "model": self.name, "choices": choices, "usage": usage})

    async def _chat(self, request: web.Request) -> web.Response:
        admitted = await self._admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        key, body = admitted
        prompt = "\n".join(f"{m['role']}: {m['content']}" for m in body["messages"])
        n = int(body.get("n") or 1)
        choices, completion_tokens = [], 0
        for index in range(n):
            text, generated, finish = self._generate(prompt, body, index)
            completion_tokens += len(generated)
            logprobs = None
            if body.get("logprobs"):
                values = self._logprobs(prompt, generated, 0.0)[0]
                logprobs = {"content": [{"token": t, "logprob": v, "bytes": None,
                                         "top_logprobs": [{"token": t, "logprob": v, "bytes": None}]}
                                        for t, v in zip(generated, values)]}
            choices.append({"index": index, "finish_reason": finish, "logprobs": logprobs,
                            "message": {"role": "assistant", "content": text}})
        usage = {"prompt_tokens": len(tokens(prompt)), "completion_tokens": completion_tokens,
                 "total_tokens": len(tokens(prompt)) + completion_tokens}
        return self._reply(key, {"id": f"chatcmpl-{key[:12]}", "object": "chat.completion", "created": 0,
                                 "model": self.name, "choices": choices, "usage": usage})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lmaudit.testing.stubserver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--name", default="stub")
    args = parser.parse_args()
    import socket

    sock = socket.create_server(("127.0.0.1", args.port))
    print(f"stub server on http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    web.run_app(StubServer(name=args.name, latency=args.latency).app(), sock=sock, print=None, access_log=None,
                backlog=1024)


if __name__ == "__main__":
    main()
