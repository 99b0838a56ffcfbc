from fractions import Fraction
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lmaudit.codeeval import pass_at_k


def exact(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


@given(st.integers(1, 80).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_matches_the_exact_binomial_formula(args):
    n, c, k = args
    assert pass_at_k(n, c, k) == pytest.approx(float(exact(n, c, k)), abs=1e-12)


def test_known_values():
    assert pass_at_k(5, 0, 1) == 0.0
    assert pass_at_k(5, 5, 5) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the pass rate
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)  # C(2,2)/C(4,2)
    assert pass_at_k(5, 1, 5) == 1.0  # all five drawn: the one passing sample is among them


def test_stable_where_binomials_overflow_floats():
    # comb(2000, 1000) is ~1e600: the ratio form cannot be evaluated in floats, the product form can.
    value = pass_at_k(2000, 7, 1000)
    assert value == pytest.approx(float(exact(2000, 7, 1000)), rel=1e-12)
    assert 0 < pass_at_k(2000, 1, 1) < 1


def test_rejects_impossible_arguments():
    for n, c, k in ((5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)):
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)
