"""Calibration of multiple-choice option probabilities: reliability diagrams, ECE, MCE and Brier, with CIs."""

from lmaudit.calibration.metrics import (
    CalibrationReport,
    CalibrationSlice,
    Reliability,
    ReliabilityBin,
    calibration_report,
    calibration_slice,
)
from lmaudit.calibration.options import OptionProbs, option_logprobs, option_probs
from lmaudit.calibration.run import CalibrationRun, run_calibration, write_calibration

__all__ = ["CalibrationReport", "CalibrationRun", "CalibrationSlice", "OptionProbs", "Reliability", "ReliabilityBin",
           "calibration_report", "calibration_slice", "option_logprobs", "option_probs", "run_calibration",
           "write_calibration"]
