"""Safety evals: harmful and benign prompt sets, judges, tense-reformulation attacks, over-refusal.

    from lmaudit.models import load_model
    from lmaudit.safety import load_prompts, make_attack, make_judges, run_redteam, RedTeamConfig

    model = load_model("smollm2")
    result = run_redteam(model, load_prompts("jbb"), make_judges(["rules"], "jailbroken"),
                         [make_attack("past")], "runs/past", attacker=model, config=RedTeamConfig(attempts=20))
    result.results["attacks"]["past"]["asr"]["metrics"]["asr_rules"]
"""

from lmaudit.safety.attacks import ATTACKS, Attack, clean_reformulation, make_attack
from lmaudit.safety.datasets import DATASETS, PromptSet, load_prompts
from lmaudit.safety.engine import TargetSettings
from lmaudit.safety.judges import (
    JUDGE_NAMES,
    REFUSAL_PHRASES,
    SHORT_REFUSAL_PHRASES,
    Judge,
    SmallJudgeWarning,
    Verdict,
    make_judge,
    make_judges,
    parse_choice,
    parse_rating,
    parse_safe_unsafe,
    parse_yes_no,
    rules_jailbroken,
)
from lmaudit.safety.metrics import Agreement, agreement, asr_at_k, attack_summary, behaviour_records, cohen_kappa
from lmaudit.safety.overrefusal import OverRefusalConfig, OverRefusalResult, run_overrefusal
from lmaudit.safety.redteam import RedTeamConfig, RedTeamResult, run_redteam
from lmaudit.safety.templates import PromptTemplate, Rubric

__all__ = [
    "ATTACKS", "Agreement", "Attack", "DATASETS", "JUDGE_NAMES", "Judge", "OverRefusalConfig", "OverRefusalResult",
    "PromptSet", "PromptTemplate", "REFUSAL_PHRASES", "RedTeamConfig", "RedTeamResult", "Rubric",
    "SHORT_REFUSAL_PHRASES", "SmallJudgeWarning", "TargetSettings", "Verdict", "agreement", "asr_at_k",
    "attack_summary", "behaviour_records",
    "clean_reformulation", "cohen_kappa", "load_prompts", "make_attack", "make_judge", "make_judges",
    "parse_choice", "parse_rating", "parse_safe_unsafe", "parse_yes_no", "rules_jailbroken", "run_overrefusal",
    "run_redteam",
]
