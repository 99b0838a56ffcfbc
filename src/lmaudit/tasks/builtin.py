"""Registers the built-in tasks (imported by the registry on first use)."""

from lmaudit.codeeval import tasks as code
from lmaudit.tasks import custom, mmlu, truthfulqa
from lmaudit.tasks.base import register_task

register_task("mmlu", mmlu.mmlu, "MMLU, 57 subjects: scored by the log-probability of ' A'..' D' (acc)")
register_task("mmlu_cloze", mmlu.mmlu_cloze, "MMLU scored by the answer texts (acc, acc_norm, acc_bytes)")
for _name, _factory in mmlu.subject_factories().items():
    register_task(_name, _factory, "one MMLU subject", family="mmlu_<subject>")
register_task("truthfulqa_mc1", lambda data_dir=None: truthfulqa.TruthfulQA("mc1", data_dir),
              "TruthfulQA: best answer vs incorrect answers (acc)")
register_task("truthfulqa_mc2", lambda data_dir=None: truthfulqa.TruthfulQA("mc2", data_dir),
              "TruthfulQA: normalised probability mass on the true answers (mc2)")
register_task("mcq", custom.mcq, "your multiple-choice file: path=..., question=, choices=, answer=, style=")
register_task("generate", custom.generate, "your generation file: path=..., prompt=, target=, answer_pattern=")
register_task("demo_mcq", custom.demo_mcq, "20 general-knowledge questions shipped with lmaudit (no data needed)")
register_task("humaneval", code.humaneval, "HumanEval, 164 problems run in a sandbox: pass@k over -n samples")
register_task("mbpp", code.mbpp, "MBPP, 974 problems run in a sandbox: pass@k over -n samples")
