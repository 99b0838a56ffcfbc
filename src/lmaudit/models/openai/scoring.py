"""Log-likelihood over an API: echoed prompt logprobs on /completions, or option letters on chat endpoints.

Echo: the server scores context + continuation with `echo`, `logprobs=1`, and the continuation's tokens are
found by their text offsets. Before the first use the server is checked: it generates a few greedy tokens after
a fixed prompt (with their logprobs), then echoes prompt + those tokens; a correct server reports the same
numbers both ways (llama.cpp's server does not, and is refused).

Letters: for letter-choice MCQ on chat-only APIs, each question is sent once with `max_tokens=1` and
`top_logprobs`; a letter's probability is the mass of the listed first tokens that are that letter.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from lmaudit.core.errors import ModelError
from lmaudit.core.types import LoglikelihoodRequest, LoglikelihoodResult
from lmaudit.models.openai.options import LETTER_HINT, Options
from lmaudit.models.openai.parsing import Echoed, echoed, first_token_top, generated_tokens
from lmaudit.models.openai.transport import HttpStatus
from lmaudit.models.openai.usage import Usage

ECHO_PROBE_PROMPT = "The capital of France is Paris. The capital of Italy is"
ECHO_PROBE_TOLERANCE = 0.05  # nats; a correct server's two paths agree to float noise, a wrong one is off by ~1

Call = Callable[[str, dict[str, Any], Callable[[Any], Any]], Awaitable[Any]]  # (route, params, parse)


class EchoScorer:
    def __init__(self, model: str, call: Call):
        self.model, self._call = model, call
        self.max_tokens: int | None = None  # 0 or 1 once the probe has run (some servers refuse max_tokens=0)

    @property
    def verified(self) -> bool:
        return self.max_tokens is not None

    async def _echo(self, prompt: str) -> Echoed:
        params = {"model": self.model, "prompt": prompt, "echo": True, "logprobs": 1, "temperature": 0.0,
                  "max_tokens": self.max_tokens or 0}
        return await self._call("completions", params, lambda raw: echoed(raw, prompt))

    async def loglikelihood(self, request: LoglikelihoodRequest) -> LoglikelihoodResult:
        tokens, logprobs, tops, offsets = await self._echo(request.context + request.continuation)
        boundary = len(request.context)
        # The continuation's tokens: those ending after the context (a token spanning the join counts, as when
        # the context's trailing space moves to the continuation).
        picked = [i for i, (tok, start) in enumerate(zip(tokens, offsets)) if start + len(tok) > boundary]
        if not picked or picked[0] == 0:
            raise ModelError(f"{self.model}: the echoed tokens do not separate context and continuation "
                             f"{request.continuation!r}")
        total, greedy = 0.0, True
        for i in picked:
            value = logprobs[i]
            if value is None:
                raise ModelError(f"{self.model}: the server returned no log-probability for prompt token {i}")
            total += value
            top = tops[i]
            if not top:
                raise ModelError(f"{self.model}: the server returned no top_logprobs for prompt token {i}, "
                                 "so greedy matches cannot be told")
            greedy = greedy and value >= max(top.values()) - 1e-6
        return LoglikelihoodResult(logprob=total, is_greedy=greedy, n_tokens=len(picked))

    async def verify(self) -> None:
        """Refuse a server whose echoed prompt logprobs disagree with its own logprobs of generated tokens."""
        params = {"model": self.model, "prompt": ECHO_PROBE_PROMPT, "max_tokens": 3, "temperature": 0.0,
                  "logprobs": 1}
        generated = await self._call("completions", params, generated_tokens)
        text = "".join(tok for tok, _ in generated)
        self.max_tokens = 0
        try:
            tokens, logprobs, _, offsets = await self._echo(ECHO_PROBE_PROMPT + text)
        except ModelError as exc:
            if not (isinstance(exc.__cause__, HttpStatus) and exc.__cause__.status in (400, 422)):
                raise
            self.max_tokens = 1  # the extra generated token is cut off by its offset
            tokens, logprobs, _, offsets = await self._echo(ECHO_PROBE_PROMPT + text)
        if any(v is None for v in logprobs[1:]):
            raise ModelError(f"{self.model}: the server's echo omits prompt log-probabilities; it cannot score "
                             f"loglikelihood requests; {LETTER_HINT}")
        tail = [i for i, start in enumerate(offsets) if start >= len(ECHO_PROBE_PROMPT)]
        compared = 0
        for i, (token, expected) in zip(tail, generated):
            if tokens[i] != token:
                break  # tokenisation of the joined text diverged; later positions are not comparable
            got = logprobs[i]
            assert got is not None
            if abs(got - expected) > ECHO_PROBE_TOLERANCE:
                self.max_tokens = None
                raise ModelError(
                    f"{self.model}: this server's echoed prompt log-probabilities are wrong: it scores "
                    f"{token!r} as {got:.3f} when echoing but {expected:.3f} when generating it (llama.cpp's "
                    f"server is known to do this). Refusing to return such numbers; use a server with correct "
                    f"prompt logprobs (vLLM, `lmaudit serve`), or {LETTER_HINT}")
            compared += 1
        if compared == 0:
            raise ModelError(f"{self.model}: could not check the server's echoed log-probabilities (its tokens "
                             f"of the probe did not line up); set verify_echo=false to trust them anyway")


class LetterScorer:
    def __init__(self, model: str, call: Call, options: Options, usage: Usage):
        self.model, self._call, self.options, self.usage = model, call, options, usage

    def jobs(self, requests: Sequence[LoglikelihoodRequest]) -> dict[int, Callable[[], Awaitable[Any]]]:
        """One job per request; the requests of one question share one API call."""
        by_context: dict[str, list[str]] = {}
        for index, request in enumerate(requests):
            letter = request.continuation.strip()
            if not re.fullmatch(r"[A-Za-z0-9]", letter):
                raise ModelError(f"loglikelihood=letters scores single option letters; request {index}'s "
                                 f"continuation {request.continuation!r} is not one (use loglikelihood=echo "
                                 "on a server with /completions for free-text choices)")
            letters = by_context.setdefault(request.context, [])
            if letter not in letters:
                letters.append(letter)
        answers: dict[str, asyncio.Future] = {}

        async def job(request: LoglikelihoodRequest) -> LoglikelihoodResult:
            # The first request of a context asks; its siblings await the same answer.
            context = request.context
            if context not in answers:
                answers[context] = asyncio.ensure_future(self._distribution(context, by_context[context]))
            scores = await answers[context]
            logprob, greedy = scores[request.continuation.strip()]
            return LoglikelihoodResult(logprob=logprob, is_greedy=greedy, n_tokens=1)

        return {i: (lambda r=r: job(r)) for i, r in enumerate(requests)}

    async def _distribution(self, context: str, letters: list[str]) -> dict[str, tuple[float, bool]]:
        params: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": context}],
                                  "temperature": 0.0, "logprobs": True, "top_logprobs": self.options.top_logprobs}
        params[self.options.max_tokens_param] = 1
        top = await self._call("chat", params, first_token_top)
        best = max(top, key=lambda t: t[1])[0].strip() if top else ""
        mass = {letter: 0.0 for letter in letters}
        for token, logprob in top:
            if token.strip() in mass:
                mass[token.strip()] += math.exp(logprob)
        listed = sum(math.exp(lp) for _, lp in top)
        missing = [letter for letter, p in mass.items() if p == 0.0]
        # A letter outside the top-k has at most the smallest listed probability and at most its share of the
        # unlisted mass; take the smaller bound so it never outranks a listed letter.
        floor = min([min((lp for _, lp in top), default=-30.0),
                     math.log(max(1e-30, 1.0 - listed) / max(1, len(missing)))])
        self.usage.letter_question(max(0.0, 1.0 - sum(mass.values())), len(missing))
        return {letter: (math.log(p) if p > 0 else floor, letter == best) for letter, p in mass.items()}
