"""The core's built-in tasks. Registered through the `lmaudit.tasks` entry point group (pyproject.toml), as every
capability registers its own, so the registry imports neither this module nor any capability.
"""

from lmaudit.tasks import custom, mmlu, truthfulqa
from lmaudit.tasks.base import register_task


def register() -> None:
    register_task("mmlu", mmlu.mmlu, "MMLU, 57 subjects: scored by the log-probability of ' A'..' D' (acc)")
    register_task("mmlu_cloze", mmlu.mmlu_cloze, "MMLU scored by the answer texts (acc, acc_norm, acc_bytes)")
    for _name, _factory in mmlu.subject_factories().items():
        register_task(_name, _factory, "one MMLU subject", family="mmlu_<subject>")
    register_task("truthfulqa_mc1", truthfulqa.truthfulqa_mc1, "TruthfulQA: best answer vs incorrect answers (acc)")
    register_task("truthfulqa_mc2", truthfulqa.truthfulqa_mc2,
                  "TruthfulQA: normalised probability mass on the true answers (mc2)")
    register_task("mcq", custom.mcq, "your multiple-choice file: path=..., question=, choices=, answer=, style=")
    register_task("generate", custom.generate, "your generation file: path=..., prompt=, target=, answer_pattern=")
    register_task("demo_mcq", custom.demo_mcq, "20 general-knowledge questions shipped with lmaudit (no data needed)")
    from lmaudit.tasks import mmmlu  # MMMLU: MMLU translated into 14 languages (OpenAI's release)

    register_task("mmmlu", mmmlu.mmmlu, "MMMLU, MMLU translated into 14 languages: acc per language and subject")
    for _name, _factory in mmmlu.locale_factories().items():
        register_task(_name, _factory, "MMMLU in one locale", family="mmmlu_<locale>")
