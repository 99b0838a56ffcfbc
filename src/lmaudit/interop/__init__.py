"""Run other evaluators on the same data and weights, to compare numbers with them."""
