"""Mutual-information estimators used by MMIM.

- `GaussianConditional`: q(z | x) = N(mu(x), diag exp(logvar(x))), with the full
  log-density (the reference code drops the -1/2 logvar term).
- `mixture_entropy`: H(Z) of a two-group Gaussian approximation (label > 0 and
  label < 0), H = sum_g w_g * H(N(mu_g, Sigma_g)), with eps*I on each covariance
  and groups too small to estimate skipped.
- `BABound`: the Barber-Agakov bound I(X; Z) >= H(Z) + E log q(Z | X). Both terms
  live in one space, z = tanh(W h), so the bound is a bound on I(h_t; z_m), and
  by data processing also a lower bound on I(h_t; h_m).
- `info_nce`: the InfoNCE (CPC) estimate, which never exceeds log N.
"""
from __future__ import annotations

import math

import torch
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def gaussian_entropy(cov: torch.Tensor) -> torch.Tensor:
    """Differential entropy (nats) of N(., cov)."""
    k = cov.shape[-1]
    return 0.5 * (k * (1.0 + LOG_2PI) + torch.logdet(cov))


def masked_covariance(z: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """Unbiased covariance of the rows of z where mask is true, plus eps*I.

    Masks rather than boolean indexing keep shapes static.
    """
    w = mask.to(z.dtype).unsqueeze(1)
    n = w.sum()
    mean = (w * z).sum(0) / n.clamp(min=1)
    centred = (z - mean) * w
    cov = centred.T @ centred / (n - 1).clamp(min=1)
    return cov + eps * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)


def mixture_entropy(
    z: torch.Tensor, labels: torch.Tensor | None = None, min_group: int | None = None, eps: float = 1e-4
) -> torch.Tensor:
    """H(Z) from the positive and negative groups, weighted by their share.

    With no labels, Z is one Gaussian. A group with fewer than `min_group`
    samples (default 2 * dim) gives a singular covariance and is skipped; if
    every group is skipped the result is 0 and carries no gradient.
    """
    if min_group is None:
        min_group = 2 * z.shape[1]
    if labels is None:
        groups = [torch.ones(z.shape[0], dtype=torch.bool, device=z.device)]
    else:
        groups = [labels > 0, labels < 0]
    counts = [int(g.sum()) for g in groups]
    used = [(g, c) for g, c in zip(groups, counts) if c >= min_group]
    if not used:
        return z.new_zeros(())
    total = sum(c for _, c in used)
    return sum((c / total) * gaussian_entropy(masked_covariance(z, g, eps)) for g, c in used)


class GaussianConditional(nn.Module):
    """q(z | x): a diagonal Gaussian whose mean and log-variance are MLPs of x."""

    def __init__(self, x_dim: int, hidden: int, z_dim: int):
        super().__init__()
        self.mu = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, z_dim))
        self.logvar = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, z_dim))

    def log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log q(z | x) per row, in nats."""
        mu = self.mu(x)
        # Bounded so that one outlier batch cannot send the density to inf.
        logvar = self.logvar(x).clamp(-10.0, 10.0)
        return -0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + LOG_2PI).sum(-1)


class BABound(nn.Module):
    """Barber-Agakov lower bound on I(h_t; z_m), z_m = tanh(W h_m).

    `q` is fitted in the likelihood stage; `project` belongs to the
    representation and is trained with the main objective. `entropy` holds
    H(z_m) over the training set, computed once after training, so that a
    single clip can be scored (the diagnostics).
    """

    def __init__(self, x_dim: int, y_dim: int, z_dim: int, hidden: int):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(y_dim, z_dim), nn.Tanh())
        self.q = GaussianConditional(x_dim, hidden, z_dim)
        self.register_buffer("entropy", torch.zeros(()))

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log q(z | x) per row, with gradients to everything."""
        return self.q.log_prob(x, self.project(y))

    def fit_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean log q(z | x) with gradients to q alone (the likelihood stage)."""
        with torch.no_grad():
            z = self.project(y)
        return self.q.log_prob(x.detach(), z).mean()

    def forward(self, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        z = self.project(y)
        lld = self.q.log_prob(x, z).mean()
        entropy = mixture_entropy(z, labels)
        return {"lld": lld, "entropy": entropy, "bound": entropy + lld}


def info_nce(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """InfoNCE estimate of I between paired rows, in nats; at most log N.

    Row i's target is scored against the predictions from every row, with
    cosine similarity as the critic (as in MMIM's CPC).
    """
    prediction = nn.functional.normalize(prediction, dim=-1)
    target = nn.functional.normalize(target, dim=-1)
    scores = target @ prediction.T
    log_softmax_pos = scores.diagonal() - torch.logsumexp(scores, dim=-1)
    return log_softmax_pos.mean() + math.log(scores.shape[0])


class CPC(nn.Module):
    """Predicts a modality's representation from the fusion vector."""

    def __init__(self, fusion_dim: int, target_dim: int):
        super().__init__()
        self.net = nn.Linear(fusion_dim, target_dim)

    def forward(self, fusion: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return info_nce(self.net(fusion), target)

    def single_clip(self, fusion: torch.Tensor, target: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """Per-row InfoNCE against a fixed bank of training targets, in nats.

        Each row's own target competes with the bank's K - 1 representations, so
        the value lies in (-inf, log K] and does not depend on the rest of the batch.
        """
        prediction = nn.functional.normalize(self.net(fusion), dim=-1)
        own = (prediction * nn.functional.normalize(target, dim=-1)).sum(-1, keepdim=True)
        others = prediction @ nn.functional.normalize(bank, dim=-1).T
        logits = torch.cat([own, others], dim=-1)
        return torch.log_softmax(logits, dim=-1)[:, 0] + math.log(logits.shape[-1])
