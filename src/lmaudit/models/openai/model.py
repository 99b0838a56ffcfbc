"""OpenAIModel: an OpenAI-compatible endpoint (or several replicas of one) behind the Model contract.

It meets `Model`, `StreamingModel` (`set_response_hook`: each answer is reported the moment it arrives) and
`MeteredModel` (`usage()`). The work is split across the package: options (spec, options, key), transport (the
two HTTP clients), scheduling (window, routing, retries), scoring (echo log-likelihood, option letters), usage
(tokens, cost) and loop (the synchronous contract over the event loop).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from lmaudit.core.errors import ConfigError, ModelError
from lmaudit.core.redact import redact
from lmaudit.core.types import Generation, GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult
from lmaudit.models.base import ResponseHook
from lmaudit.models.openai.loop import LoopThread
from lmaudit.models.openai.options import (
    DUMMY_KEY,
    LETTER_HINT,
    Options,
    api_key,
    check_base_url,
    parse_options,
    parse_prices,
    parse_spec,
)
from lmaudit.models.openai.parsing import chat_generations, completion_generations
from lmaudit.models.openai.scheduling import Endpoint, Scheduler
from lmaudit.models.openai.scoring import EchoScorer, LetterScorer
from lmaudit.models.openai.transport import make_transport
from lmaudit.models.openai.usage import Usage


class OpenAIModel:
    """`OpenAIModel("gpt-4o-mini", ["https://api.openai.com/v1"], Options(...))`, or `load_model("openai:...")`."""

    def __init__(self, model: str, base_urls: Sequence[str], options: Options | None = None):
        if not base_urls:
            raise ConfigError("openai backend: give at least one base URL")
        for url in base_urls:
            check_base_url(url)
        self.model = model
        self.name = f"openai:{model}"
        self.base_urls = list(base_urls)
        self.options = options or Options()
        self._key = api_key(self.options)
        self._scrub = _scrubber(self._key)
        self._usage = Usage(parse_prices(self.options.prices), self.options.http)
        self._hook: ResponseHook | None = None
        self._loop = LoopThread(name=f"lmaudit-openai-{model}")
        # Nothing below refers back to the model: dropping it frees it, and a finalizer closes the connections.
        self._scheduler = Scheduler(model, self.options, self._usage, self._scrub)
        self._echo = EchoScorer(model, self._scheduler.call)
        self._letters = LetterScorer(model, self._scheduler.call, self.options, self._usage)

    def __repr__(self) -> str:  # never the key, never a credential of a URL
        return f"OpenAIModel({self.model!r}, {redact(repr(self.base_urls))}, {self.fingerprint()!r})"

    # -- contract -------------------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """What decides the answers: the model name, the API shape and the scoring method; not the URLs or key."""
        parts = [f"api={self.options.api}"]
        if self.options.loglikelihood == "letters":
            parts.append(f"ll=letters{self.options.top_logprobs}")
        if self.options.tag:
            parts.append(f"tag={self.options.tag}")
        return f"openai:{self.model}@" + ";".join(parts)

    def set_response_hook(self, hook: ResponseHook | None) -> None:
        """`hook(index, response)` runs in the caller's thread for each answer of a call as it arrives."""
        self._hook = hook

    def usage(self) -> dict[str, Any]:
        """Requests, tokens, retries and faults so far; `cost_usd` with prices; `letter_choice` in letters mode."""
        window = self._scheduler.window
        return self._usage.report(window.cuts if window is not None else None)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        if not requests:
            return []
        if self.options.loglikelihood == "letters":
            return self._run(requests, self._letters.jobs(requests))
        if self.options.api == "chat":
            raise ModelError(f"{self.model}: loglikelihood needs /completions with echo and prompt logprobs, "
                             f"but this model is set to api=chat; {LETTER_HINT}")
        for index, request in enumerate(requests):
            if not request.context:
                raise ModelError(f"loglikelihood request {index} has an empty context: an API gives no "
                                 "log-probability for a prompt's first token")
            if not request.continuation:
                raise ModelError(f"loglikelihood request {index} has an empty continuation")
        if not self._echo.verified and self.options.verify_echo:
            self._start()
            self._loop.submit(self._echo.verify()).result()
        return self._run(requests, {i: (lambda r=r: self._echo.loglikelihood(r)) for i, r in enumerate(requests)})

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        if not requests:
            return []

        async def one(request: GenerateRequest) -> Generation:
            return (await self._generate_one(request, 1))[0]

        return self._run(requests, {i: (lambda r=r: one(r)) for i, r in enumerate(requests)})

    # -- backend extras -------------------------------------------------------------------------------------
    def sample(self, requests: Sequence[GenerateRequest], n: int) -> list[list[Generation]]:
        """n samples per request in one API call each (the API's `n`); not seed-reproducible one by one."""
        if n < 1:
            raise ConfigError(f"sample: n must be >= 1, got {n}")
        jobs = {i: (lambda r=r: self._generate_one(r, n)) for i, r in enumerate(requests)}
        return self._run(requests, jobs, deliver=False)

    def close(self) -> None:
        """Close the connections and stop the loop thread (also done when the model is collected or at exit)."""
        self._loop.close()

    def __enter__(self) -> "OpenAIModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._loop.running:
            return

        async def connect() -> list[Any]:  # on the loop: the clients bind their pools to it
            endpoints = [Endpoint(url, make_transport(self.options.http, url, self._key,
                                                      self.options.max_concurrency, self.options.timeout))
                         for url in self.base_urls]
            self._scheduler.connect(endpoints)
            return [e.transport for e in endpoints]

        self._loop.start(self, connect)

    def _run(self, requests: Sequence[Any], jobs: dict, deliver: bool = True) -> list[Any]:
        self._start()
        return self._loop.run(self.model, requests, jobs, self._hook if deliver else None, self._scrub)

    async def _generate_one(self, request: GenerateRequest, n: int) -> list[Generation]:
        params: dict[str, Any] = {"model": self.model, "temperature": request.temperature}
        if request.seed is not None:
            params["seed"] = request.seed
        if request.stop:
            params["stop"] = list(request.stop)
        if n > 1:
            params["n"] = n
        if request.messages is not None or self.options.api == "chat":
            messages = ([{"role": m.role, "content": m.content} for m in request.messages]
                        if request.messages is not None else [{"role": "user", "content": request.prompt}])
            params["messages"] = messages
            params[self.options.max_tokens_param] = request.max_tokens
            if self.options.generation_logprobs:
                params.update(logprobs=True, top_logprobs=1)  # llama.cpp's server returns none without top_logprobs
            return await self._scheduler.call("chat", params, lambda raw: chat_generations(raw, n))
        params.update(prompt=request.prompt, max_tokens=request.max_tokens)
        if self.options.generation_logprobs:
            params["logprobs"] = 0
        return await self._scheduler.call("completions", params, lambda raw: completion_generations(raw, n))


def _scrubber(key: str) -> Callable[[str], str]:
    """Server and client messages without the key or a URL credential (a closure over the key alone)."""
    def scrub(text: str) -> str:
        return redact(text.replace(key, "***") if key != DUMMY_KEY else text)

    return scrub


def load_openai(rest: str, **options: Any) -> OpenAIModel:
    """openai:<model>@<base_url>[,<base_url>...] with options (see Options)."""
    model, urls = parse_spec(rest)
    return OpenAIModel(model, urls, parse_options(options))


# Name every option in the signature so callers that filter a shared option set by signature (the CLI passes
# batch_size to every backend) hand this factory only what it takes.
load_openai.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("rest", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)]
    + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
       for name, f in Options.__dataclass_fields__.items()])
