"""Exact Shapley values, interaction indices and percentiles on known answers (the model's use: test_model)."""
from __future__ import annotations

from itertools import permutations
from math import factorial

import numpy as np
import pytest
import torch

from model.mmim import percentile
from model.shapley import interaction_matrix, pairs, shapley_matrix


def brute_force_shapley(v: np.ndarray, n: int) -> np.ndarray:
    """Average marginal contribution over all n! orders: the definition, no formula."""
    phi = np.zeros(n)
    for order in permutations(range(n)):
        mask = 0
        for i in order:
            phi[i] += v[mask | 1 << i] - v[mask]
            mask |= 1 << i
    return phi / factorial(n)


def game(n: int, a: np.ndarray, b: float, c: float) -> np.ndarray:
    """v(S) = sum of a_i over S + b if players 0 and 1 are both in S + c if S is everyone."""
    v = np.zeros(2**n)
    for mask in range(2**n):
        v[mask] = sum(a[i] for i in range(n) if mask >> i & 1) + b * (mask & 3 == 3) + c * (mask == 2**n - 1)
    return v


@pytest.mark.parametrize("n", [1, 2, 3])
def test_shapley_matrix_matches_the_definition_and_is_efficient(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        v = rng.normal(size=2**n)
        phi = shapley_matrix(n) @ v
        np.testing.assert_allclose(phi, brute_force_shapley(v, n), atol=1e-12)
        assert phi.sum() == pytest.approx(v[-1] - v[0])


def test_known_game():
    a, b, c = np.array([0.5, -1.0, 2.0]), 0.6, 0.9
    v = game(3, a, b, c)
    # Additive parts go to their owner; the pair bonus is split in two; the grand bonus in three.
    np.testing.assert_allclose(shapley_matrix(3) @ v, [0.5 + b / 2 + c / 3, -1.0 + b / 2 + c / 3, 2.0 + c / 3])
    # Interaction of (0, 1): b plus its share of the three-way bonus; the others only that share.
    assert pairs(3) == [(0, 1), (0, 2), (1, 2)]
    np.testing.assert_allclose(interaction_matrix(3) @ v, [b + c / 2, c / 2, c / 2])
    # Two players: the index is the plain second difference v(12) - v(1) - v(2) + v(0).
    v2 = game(2, a[:2], b, 0.0)
    assert (interaction_matrix(2) @ v2)[0] == pytest.approx(b)
    # Additive games have no interactions.
    np.testing.assert_allclose(interaction_matrix(3) @ game(3, a, 0.0, 0.0), 0.0, atol=1e-12)


def test_percentile_known_answers():
    q = torch.linspace(0, 200, 101)  # a uniform distribution on [0, 200]
    x = torch.tensor([-5.0, 0.0, 1.0, 50.0, 123.0, 200.0, 400.0])
    torch.testing.assert_close(percentile(x, q), torch.tensor([0.0, 0.0, 0.5, 25.0, 61.5, 100.0, 100.0]))
    assert torch.isnan(percentile(x, torch.full((101,), float("nan")))).all()
