"""Known-answer tests of the MI estimators."""
import math

import numpy as np
import pytest
import torch

from model.mi import GaussianConditional, gaussian_entropy, info_nce, masked_covariance, mixture_entropy


def correlated_gaussians(n: int, rho: float, dim: int, seed: int):
    """X, Y standard normal per dimension with corr(X_i, Y_i) = rho; I = -dim/2 log(1 - rho^2)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, dim, generator=g)
    return x, y, -0.5 * dim * math.log(1 - rho**2)


def test_gaussian_log_prob_matches_torch_distributions():
    # The reference code drops -1/2 logvar; ours must be the full density.
    torch.manual_seed(0)
    q = GaussianConditional(3, 8, 2)
    x, z = torch.randn(5, 3), torch.randn(5, 2)
    mu, logvar = q.mu(x), q.logvar(x)
    expected = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(q.log_prob(x, z), expected)


def test_entropy_of_known_gaussian():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4, 4, generator=g)
    cov = a @ a.T + 0.5 * torch.eye(4)
    z = torch.randn(50_000, 4, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov.double()).T
    analytic = 0.5 * (4 * math.log(2 * math.pi * math.e) + torch.logdet(cov.double()).item())
    assert abs(mixture_entropy(z, eps=0.0).item() - analytic) < 0.03
    assert gaussian_entropy(torch.eye(1)).item() == pytest.approx(0.5 * math.log(2 * math.pi * math.e))


def test_mixture_entropy_weights_groups_by_share():
    g = torch.Generator().manual_seed(2)
    pos = torch.randn(30_000, 2, generator=g, dtype=torch.float64) * 2.0  # H = log(2 pi e) + 2 log 2
    neg = torch.randn(10_000, 2, generator=g, dtype=torch.float64) * 0.5  # H = log(2 pi e) - 2 log 2
    z = torch.cat([pos, neg])
    labels = torch.cat([torch.ones(30_000), -torch.ones(10_000)])
    expected = math.log(2 * math.pi * math.e) + 0.75 * 2 * math.log(2) - 0.25 * 2 * math.log(2)
    assert mixture_entropy(z, labels, eps=0.0).item() == pytest.approx(expected, abs=0.03)


def test_small_groups_are_skipped_and_stay_finite():
    z = torch.randn(10, 4)
    labels = torch.tensor([1.0] * 9 + [-1.0])  # one negative: covariance undefined
    h = mixture_entropy(z, labels)
    assert torch.isfinite(h)
    torch.testing.assert_close(h, mixture_entropy(z[:9]))
    assert mixture_entropy(z[:3], torch.ones(3)).item() == 0.0
    # eps*I keeps a rank-deficient covariance finite.
    flat = torch.zeros(20, 4)
    assert torch.isfinite(torch.logdet(masked_covariance(flat, torch.ones(20, dtype=torch.bool), 1e-4)))


def test_ba_bound_recovers_mi_of_correlated_gaussians():
    x, y, true_mi = correlated_gaussians(8000, rho=0.8, dim=2, seed=3)
    x_test, y_test, _ = correlated_gaussians(8000, rho=0.8, dim=2, seed=4)
    torch.manual_seed(0)
    q = GaussianConditional(2, 32, 2)
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    for _ in range(600):
        opt.zero_grad()
        (-q.log_prob(x, y).mean()).backward()
        opt.step()
    with torch.no_grad():
        bound = (mixture_entropy(y_test) + q.log_prob(x_test, y_test).mean()).item()
    assert true_mi == pytest.approx(1.0217, abs=1e-3)
    assert abs(bound - true_mi) < 0.10 * true_mi


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_info_nce_never_exceeds_log_n(n):
    torch.manual_seed(n)
    for target in (torch.randn(n, 8), None):
        prediction = torch.randn(n, 8)
        target = prediction.clone() if target is None else target  # random, then perfectly aligned
        assert info_nce(prediction, target).item() <= math.log(n) + 1e-6


def test_info_nce_known_answers():
    # Identical predictions carry no information: every row's softmax is uniform.
    target = torch.randn(16, 4)
    assert info_nce(torch.ones(16, 4), target).item() == pytest.approx(0.0, abs=1e-6)
    # Orthogonal one-hot pairs: pos = 1, negatives = 0, so I = log N + 1 - log(e + N - 1).
    eye = torch.eye(5)
    assert info_nce(eye, eye).item() == pytest.approx(math.log(5) + 1 - math.log(math.e + 4), abs=1e-6)
    assert np.isfinite(info_nce(torch.randn(1, 3), torch.randn(1, 3)).item())
