import math

import numpy as np
import pytest

from lmaudit.core.errors import UnknownNameError
from lmaudit.core.stats import summarize
from lmaudit.core.types import (
    Generation,
    GenerateRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Message,
    request_from_dict,
    request_key,
    response_from_dict,
    to_dict,
)


def test_request_round_trip_and_stable_key():
    chat = GenerateRequest(messages=(Message("user", "hi"),), max_tokens=5, temperature=0.7, seed=3, stop=("\n",))
    plain = LoglikelihoodRequest("Question?", " A")
    for request in (chat, plain):
        assert request_from_dict(to_dict(request)) == request
    assert request_key(plain) == request_key(LoglikelihoodRequest("Question?", " A"))
    assert request_key(plain) != request_key(LoglikelihoodRequest("Question?", " B"))
    assert request_key(chat) != request_key(GenerateRequest(messages=(Message("user", "hi"),), max_tokens=5,
                                                            temperature=0.7, seed=4, stop=("\n",)))


def test_response_round_trip():
    for response in (LoglikelihoodResult(-1.5, True, 2), Generation("text", "stop", (-0.1, -0.2))):
        assert response_from_dict(to_dict(response)) == response


def test_generate_request_needs_exactly_one_input():
    with pytest.raises(ValueError):
        GenerateRequest()
    with pytest.raises(ValueError):
        GenerateRequest(prompt="a", messages=(Message("user", "b"),))


def test_summarize_mean_stderr_and_ci():
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    summary = summarize(values, seed=1)
    assert summary.value == pytest.approx(0.625)
    assert summary.stderr == pytest.approx(np.std(values, ddof=1) / math.sqrt(8))
    assert summary.ci_low <= summary.value <= summary.ci_high
    assert summary.n == 8
    assert summarize(values, seed=1) == summary  # seeded
    assert math.isnan(summarize([]).value)


def test_bootstrap_ci_covers_about_95_percent():
    rng = np.random.default_rng(0)
    hits = 0
    for i in range(100):
        s = summarize(list(rng.binomial(1, 0.3, 200).astype(float)), seed=i, resamples=400)
        hits += s.ci_low <= 0.3 <= s.ci_high
    assert 88 <= hits <= 100


def test_unknown_name_suggests_closest():
    error = UnknownNameError("task", "mmul", ["mmlu", "truthfulqa_mc1"])
    assert "Did you mean 'mmlu'?" in str(error) and "truthfulqa_mc1" in str(error)
