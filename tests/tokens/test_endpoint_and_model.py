"""The tokenizer of a model spec, an endpoint's billed counts against real servers on loopback, and loss per byte."""

from __future__ import annotations

import math

import pytest

from lmaudit.core.errors import ModelError
from lmaudit.serve.app import Server
from lmaudit.serve.engine import Engine
from lmaudit.testing.background import BackgroundServer
from lmaudit.testing.stubserver import StubServer, tokens as stub_tokens
from lmaudit.tokens import count, load_tokenizer, loss_per_byte

pytestmark = pytest.mark.slow
TEXTS = ["The cat sat on the mat.", "Ein Satz auf Deutsch, mit Komma.", "हिन्दी में एक वाक्य।", "数字 12345", ""]


@pytest.fixture(scope="module")
def served(smollm2):
    """`lmaudit serve`'s application around the bundled model, on loopback."""
    with BackgroundServer(lambda: Server(Engine(smollm2), "smollm2").app()) as server:
        yield server


def test_endpoint_bills_what_the_served_model_tokenizes(served, smollm2):
    billed = load_tokenizer(f"openai:smollm2@{served.url}/v1").measure(TEXTS).tokens.tolist()
    own = [len(smollm2.encode(t, add_special_tokens=False)) if t else 0 for t in TEXTS]
    assert billed == own and billed[0] > 0


def test_endpoint_counts_against_the_stub_server(monkeypatch):
    monkeypatch.setenv("LMAUDIT_API_KEY", "sk-test-key")
    stub = StubServer(api_key="sk-test-key")
    with BackgroundServer(stub.app) as server:
        tokenizer = load_tokenizer(f"openai:stub@{server.url}/v1")
        assert tokenizer.measure(TEXTS).tokens.tolist() == [len(stub_tokens(t)) for t in TEXTS]
        assert stub.seen_authorization[-1] == "Bearer sk-test-key"
        assert "sk-test-key" not in tokenizer.fingerprint()
    with pytest.raises(ModelError, match="cannot reach the endpoint"):
        load_tokenizer(f"openai:stub@{server.url}/v1").measure(["after the server stopped"])


def test_model_spec_tokenizer_is_the_white_box_tokenizer(smollm2, flores):
    tokenizer = load_tokenizer("model:smollm2")
    assert tokenizer.name == "model:smollm2" and tokenizer.separable
    corpus = flores.select(["eng_Latn", "hin_Deva"]).head(40)
    counts = count(tokenizer, corpus)
    for code, text in corpus.texts.items():
        assert counts[code].tokens == len(smollm2.encode(text.joined, add_special_tokens=False))


def test_loss_per_byte_through_the_runner(smollm2, flores, tmp_path):
    corpus = flores.select(["deu_Latn", "hin_Deva"], "eng_Latn").head(4)
    report = loss_per_byte(smollm2, corpus, model_spec="smollm2", output_dir=tmp_path / "loss", progress=False)
    rows = {r.language: r for r in report.rows}
    assert set(rows) == {"eng_Latn", "deu_Latn", "hin_Deva"}
    # Independently: the model's per-token log-probabilities of each sentence, summed, in bits per UTF-8 byte.
    sentences = [s for s in corpus.texts["hin_Deva"].items if s]
    from lmaudit.core.types import TokenLogprobsRequest

    answers = smollm2.token_logprobs([TokenLogprobsRequest(s) for s in sentences])
    bits = -sum(sum(a.logprobs) for a in answers) / math.log(2)
    assert rows["hin_Deva"].bits_per_byte == pytest.approx(bits / sum(len(s.encode()) for s in sentences), rel=1e-6)
    assert rows["hin_Deva"].bits_per_byte_ci_low <= rows["hin_Deva"].bits_per_byte <= rows["hin_Deva"].bits_per_byte_ci_high
    assert rows["hin_Deva"].premium > rows["deu_Latn"].premium > 1.0
    assert len([line for line in (tmp_path / "loss" / "samples.jsonl").read_text().splitlines() if line]) == 12
    again = loss_per_byte(smollm2, corpus, model_spec="smollm2", output_dir=tmp_path / "loss", progress=False)
    assert again.results == report.results  # resumed: same records, same results
