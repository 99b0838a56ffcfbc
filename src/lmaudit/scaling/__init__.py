"""Predictable scaling: train a Transformer ladder, fit scaling laws, predict a big run before it is trained.

torch and transformers are imported only when a model is trained.
"""

from lmaudit.scaling.corpus import Corpus, Document, load_corpus, stdlib_files
from lmaudit.scaling.fit import (
    ComputeLawFit,
    ComputeOptimal,
    Estimate,
    ParamsLawFit,
    PassRateFit,
    PassRateLawFit,
    fit_compute_law,
    fit_params_law,
    fit_pass_rate_law,
)
from lmaudit.scaling.ladder import PRESETS, LadderConfig, LadderResult, run_ladder
from lmaudit.scaling.prediction import RegisteredPrediction, read_prediction, register_prediction
from lmaudit.scaling.runs import CurvePoint, RunRecord, read_pass_rates, read_runs, write_runs
from lmaudit.scaling.train import ModelShape, RunSpec, TokenData, train_run

__all__ = [
    "Corpus", "Document", "load_corpus", "stdlib_files", "ComputeLawFit", "ComputeOptimal", "Estimate",
    "ParamsLawFit", "PassRateFit", "PassRateLawFit", "fit_compute_law", "fit_params_law", "fit_pass_rate_law",
    "PRESETS", "LadderConfig", "LadderResult", "RegisteredPrediction", "read_prediction", "register_prediction", "run_ladder",
    "CurvePoint", "RunRecord", "read_pass_rates", "read_runs", "write_runs", "ModelShape", "RunSpec", "TokenData",
    "train_run",
]
