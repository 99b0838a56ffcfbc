"""Tokenization cost across languages: premiums, API cost, context capacity, and what they do to accuracy.

    from lmaudit.tokens import load_corpus, load_tokenizer, measure_premiums, Settings

    corpus = load_corpus("flores200")
    report = measure_premiums({"cl100k_base": load_tokenizer("cl100k_base")}, corpus, Settings(), output_dir="runs/t")

Counts equal Petrov et al.'s published FLORES-200 counts (the text of each language joined as they join it);
see docs/tokens.md for the measures and the commands.
"""

from lmaudit.tokens.accuracy import AccuracyFit, fit, load_scores, scatter
from lmaudit.tokens.corpora import LanguageText, ParallelCorpus, load_corpus
from lmaudit.tokens.cost import CostRow, Price, Workload, cost_rows, example_prices_path, read_prices
from lmaudit.tokens.counting import LanguageCount, count, segment
from lmaudit.tokens.languages import language_name, to_flores
from lmaudit.tokens.lossbyte import LossReport, LossRow, loss_per_byte
from lmaudit.tokens.measures import PremiumRow, premiums, summary
from lmaudit.tokens.published import GPT4_CITATION, GPT4_MMLU_3SHOT, PETROV_CITATION, petrov_counts
from lmaudit.tokens.run import PremiumReport, Settings, measure_premiums
from lmaudit.tokens.specs import SPEC_FORMS, load_tokenizer
from lmaudit.tokens.tokenizers import Measured, Tokenizer

__all__ = ["AccuracyFit", "CostRow", "GPT4_CITATION", "GPT4_MMLU_3SHOT", "LanguageCount", "LanguageText",
           "LossReport", "LossRow", "Measured", "PETROV_CITATION", "ParallelCorpus", "PremiumReport", "PremiumRow",
           "Price", "SPEC_FORMS", "Settings", "Tokenizer", "Workload", "cost_rows", "count", "example_prices_path",
           "fit", "language_name", "load_corpus", "load_scores", "load_tokenizer", "loss_per_byte",
           "measure_premiums", "petrov_counts", "premiums", "read_prices", "scatter", "segment", "summary",
           "to_flores"]
