"""Cost per language from the shipped price table (checked by hand), and accuracy against premium."""

from __future__ import annotations

import json
import math

import pytest

from lmaudit.core.errors import DataError, UnknownNameError
from lmaudit.tokens import (GPT4_MMLU_3SHOT, Settings, Workload, fit, load_tokenizer, measure_premiums, read_prices)
from lmaudit.tokens.cost import choose
from lmaudit.tokens.versus import relate


def test_cost_per_language_from_the_shipped_price_table_by_hand(flores, tmp_path):
    prices = choose(read_prices(), ["gpt-4o"])
    corpus = flores.select(["hin_Deva", "jpn_Jpan"], "eng_Latn").head(500)
    report = measure_premiums({"tiktoken:o200k_base": load_tokenizer("tiktoken:o200k_base")}, corpus, Settings(),
                              output_dir=tmp_path / "run", prices=prices, workload=Workload(), progress=False)
    by_language = {c.language: c for c in report.cost}
    # By hand: gpt-4o costs $2.50 per million input and $10.00 per million output tokens (October 2024). The
    # workload is 1M English input and 200k English output tokens: $2.50 + $2.00 = $4.50 in English, and in
    # another language that times the ratio of its token count to English's under o200k_base.
    encoding = load_tokenizer("o200k_base").encoding
    english = len(encoding.encode_ordinary(corpus.texts["eng_Latn"].joined))
    for code in ("hin_Deva", "jpn_Jpan"):
        ratio = len(encoding.encode_ordinary(corpus.texts[code].joined)) / english
        row = by_language[code]
        assert row.cost_usd == pytest.approx(4.50 * ratio, rel=1e-12)
        assert row.input_tokens == round(1_000_000 * ratio) and row.output_tokens == round(200_000 * ratio)
        assert row.examples_in_context == math.floor(128_000 / (200 * ratio))
        assert row.cost_ci_low < row.cost_usd < row.cost_ci_high
    assert by_language["eng_Latn"].cost_usd == pytest.approx(4.50)
    assert (tmp_path / "run" / "cost.csv").read_text().splitlines()[0].startswith("language,name,model,tokenizer")


def test_price_table_errors(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text('date = "2024-10-01"\nsource = "x"\n', encoding="utf-8")
    with pytest.raises(DataError, match="defines no model"):
        read_prices(empty)
    partial = tmp_path / "partial.toml"
    partial.write_text('date = "d"\nsource = "s"\n[[model]]\nname = "m"\ntokenizer = "cl100k_base"\n'
                       'input_per_million = 1.0\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"number 1 \(m\) needs 'output_per_million'"):
        read_prices(partial)
    with pytest.raises(UnknownNameError, match="Did you mean 'gpt-4o-mini'"):
        choose(read_prices(), ["gpt-4o-mnii"])


def test_gpt4_accuracy_falls_with_the_cl100k_premium(data_dir, tmp_path):
    """Acceptance: GPT-4's Figure 5 accuracies against cl100k_base premiums: negative Spearman, CI excluding 0."""
    result, folder = relate("gpt4-mmlu", tokenizer="cl100k_base", corpus="flores200", data_dir=data_dir,
                            output_dir=tmp_path / "vs", progress=False)
    assert result.n == len(GPT4_MMLU_3SHOT) == 27 and not result.unmatched
    assert result.spearman < 0 and result.spearman_ci[1] < 0
    assert result.slope < 0 and result.slope_ci[1] < 0
    results = json.loads((folder / "results.json").read_text())
    assert results["kind"] == "tokens" and "arXiv:2303.08774" in results["citation"]
    assert {m["metric"] for m in results["metrics"]} == {"spearman", "pearson_log2_premium",
                                                          "slope_points_per_doubling"}
    assert (folder / "accuracy_vs_premium.png").stat().st_size > 10_000


def test_fit_against_an_independent_computation():
    from scipy import stats

    premiums = {"a": 1.0, "b": 2.0, "c": 4.0, "d": 8.0, "e": 3.0}
    scores = {"a": 80.0, "b": 70.0, "c": 62.0, "d": 50.0, "e": 69.0, "f": 10.0}
    result = fit(premiums, scores, resamples=200)
    assert result.unmatched == ["f"] and result.n == 5
    x = [math.log2(premiums[k]) for k in "abcde"]
    y = [scores[k] for k in "abcde"]
    assert result.slope == pytest.approx(stats.linregress(x, y).slope)
    assert result.spearman == pytest.approx(stats.spearmanr(x, y).statistic)
    with pytest.raises(DataError, match="only 1 languages"):
        fit({"a": 1.0}, scores)
