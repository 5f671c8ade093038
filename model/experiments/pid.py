"""Partial information decomposition of what two sources say about a target, on discrete data.

Williams and Beer (2010), "Nonnegative Decomposition of Multivariate Information"
(arXiv:1004.2515): the mutual information I(X1, X2; Y) splits into

    redundancy R  = sum_y p(y) min_i I_spec(Y = y; X_i)       information both sources carry
    unique U_i    = I(X_i; Y) - R                              information only X_i carries
    synergy S     = I(X1, X2; Y) - U_1 - U_2 - R               information only the pair carries

with the specific information I_spec(Y = y; X) = sum_x p(x | y) log(p(y | x) / p(y)).
This is the redundancy measure I_min; Liang et al. (NeurIPS 2023, "Quantifying &
Modeling Multimodal Interactions") estimate the same four quantities for multimodal
models with other redundancy definitions. Estimates here are plug-in (empirical
frequencies), in nats; with few samples per cell they are biased upwards, so keep the
number of bins small.
"""
from __future__ import annotations

import numpy as np


def joint(x1: np.ndarray, x2: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Empirical p(x1, x2, y) from integer codes 0..k-1."""
    p = np.zeros((x1.max() + 1, x2.max() + 1, y.max() + 1))
    np.add.at(p, (x1, x2, y), 1.0)
    return p / p.sum()


def _mi(pxy: np.ndarray) -> float:
    """I(X; Y) from p(x, y) (x may be a flattened pair)."""
    px, py = pxy.sum(1, keepdims=True), pxy.sum(0, keepdims=True)
    nz = pxy > 0
    return float((pxy[nz] * np.log(pxy[nz] / (px @ py)[nz])).sum())


def _specific(pxy: np.ndarray) -> np.ndarray:
    """I_spec(Y = y; X) for every y, from p(x, y)."""
    px, py = pxy.sum(1), pxy.sum(0)
    out = np.zeros(len(py))
    for y in np.flatnonzero(py > 0):
        p_x_given_y = pxy[:, y] / py[y]
        nz = p_x_given_y > 0
        p_y_given_x = pxy[nz, y] / px[nz]
        out[y] = float((p_x_given_y[nz] * np.log(p_y_given_x / py[y])).sum())
    return out


def decompose(p: np.ndarray) -> dict[str, float]:
    """R, U1, U2, S and the totals from p(x1, x2, y), in nats."""
    p1, p2 = p.sum(1), p.sum(0)
    py = p.sum((0, 1))
    redundancy = float((py * np.minimum(_specific(p1), _specific(p2))).sum())
    i1, i2 = _mi(p1), _mi(p2)
    i12 = _mi(p.reshape(-1, p.shape[2]))
    return {"redundancy": redundancy, "unique_1": i1 - redundancy, "unique_2": i2 - redundancy,
            "synergy": i12 - i1 - i2 + redundancy, "mi_1": i1, "mi_2": i2, "mi_joint": i12}


def quantile_codes(x: np.ndarray, bins: int) -> np.ndarray:
    """Integer codes 0..bins-1 by the quantiles of x itself (ties fall in the lower bin)."""
    edges = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, x, side="left").astype(int)
