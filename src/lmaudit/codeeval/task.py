"""CodeTask: n sampled programs per problem, run against the problem's tests in the sandbox, scored by pass@k."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmaudit.codeeval.benchmarks import CodeBenchmark, cut_at_stop, extract_code
from lmaudit.codeeval.passk import pass_at_k
from lmaudit.core.errors import ConfigError
from lmaudit.core.hashing import file_digest
from lmaudit.core.types import GenerateRequest, Generation, Message, Request, Response, Sample
from lmaudit.sandbox import ExecResult, Program, Sandbox
from lmaudit.tasks.base import Scored

STANDARD_KS = (1, 10, 100)


def parse_ks(ks: int | str | Sequence[int | str] | None, n: int) -> tuple[int, ...]:
    """The k values to report: those given (all must be <= n), or 1, 10, 100 and n itself, where <= n."""
    if ks is None:
        return tuple(sorted({k for k in (*STANDARD_KS, n) if k <= n}))
    items = [ks] if isinstance(ks, (int, str)) else list(ks)
    values = []
    for item in items:
        for part in str(item).replace("|", ",").split(","):
            try:
                values.append(int(part))
            except ValueError:
                raise ConfigError(f"ks: expected integers, got {part!r}") from None
    bad = [k for k in values if not 1 <= k <= n]
    if bad:
        raise ConfigError(f"ks: pass@k needs 1 <= k <= n={n} samples per problem; got {bad} "
                          f"(raise n with -n, or drop those k)")
    return tuple(sorted(set(values)))


class CodeTask:
    """Sample `n` programs per problem at `temperature` and report pass@k for each k in `ks` plus pass_rate.

    `score_batch` returns each item's scores with its per-program outcomes (status, error type, stderr tail,
    seconds) as the `execution` payload, which the runner writes into the record's `execution` field.
    """

    def __init__(self, benchmark: CodeBenchmark, sandbox: Sandbox, *, n: int = 1, temperature: float = 0.8,
                 ks: int | str | Sequence[int | str] | None = None, chat: bool = False, max_tokens: int = 512,
                 seed: int = 0, data_path: str | None = None, data_dir: str | None = None):
        if n < 1:
            raise ConfigError(f"n (samples per problem) must be at least 1, got {n}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if n > 1 and temperature == 0:
            raise ConfigError(f"n={n} samples at temperature 0 would all be the same program; "
                              "use a temperature > 0 (e.g. 0.8) or n=1")
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be positive, got {max_tokens}")
        self.benchmark = benchmark
        self.sandbox = sandbox
        self.n, self.temperature, self.chat = n, float(temperature), chat
        self.max_tokens, self.seed = max_tokens, seed
        self.ks = parse_ks(ks, n)
        self.name = benchmark.name
        self.metrics = (*(f"pass@{k}" for k in self.ks), "pass_rate")
        self.group_by = benchmark.group_by
        self.path = benchmark.find(data_path, data_dir)

    def samples(self) -> list[Sample]:
        return self.benchmark.load(self.path)

    def requests(self, sample: Sample) -> list[Request]:
        # Distinct seeds make the n requests distinct cache entries (and distinct samples).
        if self.chat:
            messages = (Message("user", self.benchmark.chat_prompt(sample)),)
            return [GenerateRequest(messages=messages, max_tokens=self.max_tokens, temperature=self.temperature,
                                    seed=self.seed + i) for i in range(self.n)]
        prompt = self.benchmark.base_prompt(sample)
        return [GenerateRequest(prompt=prompt, max_tokens=self.max_tokens, temperature=self.temperature,
                                seed=self.seed + i, stop=self.benchmark.base_stop) for i in range(self.n)]

    def code(self, sample: Sample, text: str) -> str:
        """The code in one model answer."""
        if self.chat:
            return extract_code(text, sample.data.get("entry_point"))
        return cut_at_stop(text, self.benchmark.base_stop)

    def program(self, sample: Sample, text: str) -> Program:
        """What the sandbox runs for one model answer: the code, and the problem's tests to judge it."""
        return self.benchmark.program(sample, self.code(sample, text))

    def score(self, sample: Sample, responses: list[Response]) -> dict[str, float]:
        return self.score_batch([(sample, responses)])[0].scores

    def score_batch(self, items: Sequence[tuple[Sample, Sequence[Response]]]) -> list[Scored]:
        """Run every program of every item in parallel on the sandbox's workers, then score per item."""
        programs: list[Program] = []
        for sample, responses in items:
            if len(responses) != self.n:
                raise ConfigError(f"{self.name} {sample.id}: expected {self.n} responses, got {len(responses)}")
            for response in responses:
                if not isinstance(response, Generation):
                    raise ConfigError(f"{self.name} {sample.id}: expected generated text, got {response.kind}")
                programs.append(self.program(sample, response.text))
        results = self.sandbox.run_many(programs)
        scores = []
        for index, (sample, _) in enumerate(items):
            mine = results[index * self.n:(index + 1) * self.n]
            scores.append(Scored(self.pass_scores(mine), execution=[r.to_dict() for r in mine]))
        return scores

    def pass_scores(self, results: Sequence[ExecResult]) -> dict[str, float]:
        c = sum(r.passed for r in results)
        scores = {f"pass@{k}": pass_at_k(self.n, c, k) for k in self.ks}
        scores["pass_rate"] = c / self.n
        return scores

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "code", "benchmark": self.benchmark.name, "n": self.n,
                "temperature": self.temperature, "ks": list(self.ks), "chat": self.chat,
                "max_tokens": self.max_tokens, "seed": self.seed,
                "stop": [] if self.chat else list(self.benchmark.base_stop),
                "data_files": {str(self.path): file_digest(self.path)}, "sandbox": self.sandbox.describe()}
