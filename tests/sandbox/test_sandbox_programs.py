"""Programs judged by tests that run in the sandbox's monitor: what crosses, how, and how outcomes read."""

from __future__ import annotations

import pytest

from lmaudit.sandbox import Limits, Program, Sandbox

CASES = {
    # name: (Program, status, error type)
    "plain_values": (Program("def f(x):\n    return [x, (x, 'a'), {x: b'b'}, {1.5}, None, 2j]\n",
                             "assert f(1) == [1, (1, 'a'), {1: b'b'}, {1.5}, None, 2j]\n"), "passed", None),
    # Subclasses of built-in types and numpy scalars arrive as their plain value.
    "converted_values": (Program("import collections, enum, numpy\nPoint = collections.namedtuple('Point', 'x y')\n"
                                 "class Color(enum.IntEnum):\n    RED = 1\n"
                                 "def f():\n    return Point(1, 2), Color.RED, numpy.float64(0.5), "
                                 "collections.Counter('aab')\n",
                                 "p, c, h, counts = f()\nassert p == (1, 2) and type(p) is tuple\n"
                                 "assert c == 1 and type(c) is int\nassert h == 0.5 and type(h) is float\n"
                                 "assert counts == {'a': 2, 'b': 1} and type(counts) is dict\n"), "passed", None),
    # The program's own objects stay there: passed back, called, iterated, measured, indexed.
    "references": (Program("class Node:\n    def __init__(self, value, rest=None):\n        self.value, self.rest = value, rest\n"
                           "    def total(self):\n        return self.value + (self.rest.total() if self.rest else 0)\n"
                           "def chain(*values):\n    node = None\n    for v in reversed(values):\n        node = Node(v, node)\n"
                           "    return node\n"
                           "def evens(n):\n    return (i for i in range(n) if i % 2 == 0)\n"
                           "class Box:\n    def __len__(self):\n        return 3\n    def __getitem__(self, i):\n"
                           "        return i * 10\n",
                           "node = chain(1, 2, 3)\nassert node.total() == 6 and node.value == 1\n"
                           "assert Node(5, node).total() == 11\nassert list(evens(7)) == [0, 2, 4, 6]\n"
                           "assert 4 in evens(7) and 3 not in evens(7)\nbox = Box()\nassert len(box) == 3 and box[2] == 20\n"
                           "assert [n.value for n in [Node(1), Node(2)]] == [1, 2]\n", uses=None), "passed", None),
    "reference_has_no_truth_value": (Program("class Yes:\n    def __bool__(self):\n        return True\n"
                                             "def f():\n    return Yes()\n", "assert f()\n"), "error", "TypeError"),
    "reference_equals_only_itself": (Program("class Same:\n    def __eq__(self, other):\n        return True\n"
                                             "def f():\n    return Same()\n", "x = f()\nassert x == x\nassert x == 1\n"),
                                     "failed", "AssertionError"),
    # Built-in and standard-library classes and functions cross by name.
    "globals_by_name": (Program("import math\ndef f(kind, value):\n    return kind(value), math.sqrt, type(value)\n",
                                "import math\nconvert, root, kind = f(int, 2.7)\n"
                                "assert convert == 2 and root is math.sqrt and kind is float\n"
                                "assert math.isclose(root(4), 2.0)\n"), "passed", None),
    # Exceptions arrive as their nearest built-in class; the record names the program's own.
    "exceptions": (Program("class Bad(ValueError):\n    pass\ndef f(x):\n    if x < 0:\n        raise Bad('negative')\n"
                           "    return x\n", "try:\n    f(-1)\nexcept ValueError as exc:\n    assert 'negative' in str(exc)\n"
                           "else:\n    raise AssertionError('no error')\nf(-2)\n"), "error", "Bad"),
    "an_assertion_in_the_program_fails": (Program("def f(x):\n    assert x > 0, 'must be positive'\n    return x\n",
                                                  "f(-1)\n"), "failed", "AssertionError"),
    # Only the names the tests may use reach them; context code is the tests' own.
    "uses_limits_the_names": (Program("def f(x):\n    return x\ndef helper():\n    return 1\n",
                                      "assert f(1) == 1\nhelper()\n", uses=("f",)), "error", "NameError"),
    "context_is_trusted": (Program("def double(x):\n    return 0\ndef f(x):\n    return 2 * x\n",
                                   "assert f(3) == double(3)\n", context="def double(x):\n    return 2 * x\n",
                                   uses=("f",)), "passed", None),
    # The worker ending mid-test: how it ended is the outcome, even with children keeping its pipes open.
    "exits_during_a_call": (Program("import os, subprocess\ndef f(x):\n    subprocess.Popen(['sleep', '30'])\n"
                                    "    os._exit(0)\n", "assert f(1) == 1\n"),
                            "error", "ExitedBeforeTestsFinished(exit code 0)"),
    "crashes_during_a_call": (Program("import ctypes\ndef f():\n    ctypes.string_at(0)\n", "f()\n"),
                              "error", "Killed(SIGSEGV)"),
    "spins_during_a_call": (Program("def f():\n    while True:\n        pass\n", "f()\n"), "timeout", "CPUTimeLimit"),
    "syntax_error": (Program("def f(:\n", "assert f() == 1\n"), "error", "SyntaxError"),
}


@pytest.fixture(scope="module")
def outcomes():
    sandbox = Sandbox(Limits(wall_seconds=20, cpu_seconds=1, memory_bytes=1 << 30), isolation="bwrap", workers=2)
    return dict(zip(CASES, sandbox.run_many([case[0] for case in CASES.values()])))


@pytest.mark.parametrize("name", list(CASES))
def test_outcome(outcomes, name):
    result = outcomes[name]
    assert (result.status, result.error_type) == CASES[name][1:], result.stderr


def test_failures_quote_the_tests_and_the_program(outcomes):
    trace = outcomes["exceptions"].stderr
    assert 'File "tests.py", line 7' in trace and "in the program:" in trace
    assert 'program.py", line 5, in f' in trace and "raise Bad('negative')" in trace
    assert "<string>" not in trace  # the driver's own frames are left out
