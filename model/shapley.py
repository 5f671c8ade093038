"""Exact Shapley values and pairwise Shapley interaction indices for a few players.

With M modalities there are 2^M coalitions, numbered by bitmask: bit i set means
player i is in. Given the value of every coalition, v (2^M,), both quantities are
fixed linear maps of v, so they are precomputed here as matrices and applied in the
model graph as one matmul:

    phi_i  = sum_{S not containing i} |S|! (M-|S|-1)! / M! * (v(S + i) - v(S))
    I_ij   = sum_{S without i, j} |S|! (M-|S|-2)! / (M-1)! * (v(S+ij) - v(S+i) - v(S+j) + v(S))

phi is Shapley (1953); I_ij is the Shapley interaction index of Grabisch and Roubens
(1999): positive when i and j together move the value more than each does alone
(they reinforce each other), negative when they overlap or cancel. Efficiency:
sum_i phi_i = v(all) - v(none).
"""
from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np


def _members(mask: int, n: int) -> int:
    return sum((mask >> i) & 1 for i in range(n))


def shapley_matrix(n: int) -> np.ndarray:
    """(n, 2^n): phi = W @ v."""
    w = np.zeros((n, 2**n))
    for i in range(n):
        for mask in range(2**n):
            if mask >> i & 1:
                continue
            s = _members(mask, n)
            weight = factorial(s) * factorial(n - s - 1) / factorial(n)
            w[i, mask | 1 << i] += weight
            w[i, mask] -= weight
    return w


def pairs(n: int) -> list[tuple[int, int]]:
    return list(combinations(range(n), 2))


def interaction_matrix(n: int) -> np.ndarray:
    """(n(n-1)/2, 2^n), rows in the order of `pairs(n)`: I = P @ v."""
    p = np.zeros((len(pairs(n)), 2**n))
    for row, (i, j) in enumerate(pairs(n)):
        for mask in range(2**n):
            if mask >> i & 1 or mask >> j & 1:
                continue
            s = _members(mask, n)
            weight = factorial(s) * factorial(n - s - 2) / factorial(n - 1)
            p[row, mask | 1 << i | 1 << j] += weight
            p[row, mask | 1 << i] -= weight
            p[row, mask | 1 << j] -= weight
            p[row, mask] += weight
    return p
