"""Share of LLM-modified text in a corpus, estimated from word distributions without classifying documents.

    ref = run_build_reference(load_model("smollm2"), "old.csv", text_column="summaries")   # P and Q (two-stage)
    refs = reference_corpora(load_reference(ref.run_dir), EstimateSettings(vocabulary="adjectives"))
    found = estimate(refs.problem(sentence_sets(sentences, "adjectives")), resamples=1000)
    found.alpha, found.ci, found.anchor, found.reference_share

    excess_vocabulary(reference_docs, target_docs)    # Kobak et al.: lower bound, no AI corpus needed

Two estimators: the mixture MLE of Liang et al. (exact 1-D solve, a corrected score for the references' noise,
joint bootstrap over the references and the target, profile-likelihood interval; `mle`, `kernels`), and excess
vocabulary (`excess`). Corpus-scale counting runs through the contamination package's corpus readers, locally or
on Ray (`counting`). The anchor's target-only loop is in `anchor`, for comparison.
"""

from lmaudit.llmuse.anchor import AnchorEstimate, anchor_bootstrap, anchor_log_probabilities
from lmaudit.llmuse.building import ReferenceRun, run_build_reference
from lmaudit.llmuse.corpus import Documents, read_documents
from lmaudit.llmuse.counting import map_shards, target_sentences
from lmaudit.llmuse.excess import ExcessResult, ExcessSettings, ExcessWord, excess_vocabulary
from lmaudit.llmuse.mle import Interval, MixtureEstimate, MixtureProblem, estimate
from lmaudit.llmuse.reference import Reference, SplitPlan, load_reference
from lmaudit.llmuse.rewrite import Prompts, RewriteSettings
from lmaudit.llmuse.runs import EstimateSettings, reference_corpora, run_estimate, run_excess, run_validation
from lmaudit.llmuse.simulate import WordModel, sample_mixture, sample_sentences, word_model
from lmaudit.llmuse.validation import SimulationSizes, StudySettings, validate_heldout, validate_simulated
from lmaudit.llmuse.vocabulary import References, WordTable, build_vocabulary, references, sentence_sets

__all__ = ["AnchorEstimate", "Documents", "EstimateSettings", "ExcessResult", "ExcessSettings", "ExcessWord",
           "Interval", "MixtureEstimate", "MixtureProblem", "Prompts", "Reference", "ReferenceRun", "References",
           "RewriteSettings", "SimulationSizes", "SplitPlan", "StudySettings", "WordModel", "WordTable",
           "anchor_bootstrap", "anchor_log_probabilities", "build_vocabulary", "estimate", "excess_vocabulary",
           "load_reference", "map_shards", "read_documents", "reference_corpora", "references",
           "run_build_reference", "run_estimate", "run_excess", "run_validation", "sample_mixture",
           "sample_sentences", "sentence_sets", "target_sentences", "validate_heldout", "validate_simulated",
           "word_model"]
