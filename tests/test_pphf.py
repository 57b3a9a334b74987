"""Point-process hybrid filter (IMM over modes): reduces to the PPAF, classifies modes on
simulated rest / movement data, validates its input."""

from __future__ import annotations

import numpy as np
import pytest

from spikessm.models.decoding import hybrid_filter, ppaf_filter

T, N, D = 1000, 20, 2


def two_mode_data(seed=0, T=T):
    """Rest (mode 0): the state decays to 0 and barely moves; movement (mode 1): a slow
    rotation with large noise, and half of the cells raise their baseline. (Also used by
    benchmarks/bench_decoding.py.)"""
    rng = np.random.default_rng(seed)
    Pt = np.array([[0.99, 0.01], [0.02, 0.98]])
    A = np.stack([0.9 * np.eye(D), 0.98 * np.array([[np.cos(0.1), -np.sin(0.1)],
                                                    [np.sin(0.1), np.cos(0.1)]])])
    Q = np.stack([1e-4 * np.eye(D), 0.02 * np.eye(D)])
    C = rng.normal(0.0, 1.0, (N, D))
    base = np.stack([np.full(N, -1.5), np.r_[np.full(N // 2, -0.7), np.full(N - N // 2, -1.5)]])
    s = np.zeros(T, int)
    x = np.zeros((T, D))
    for t in range(1, T):
        s[t] = rng.choice(2, p=Pt[s[t - 1]])
        x[t] = A[s[t]] @ x[t - 1] + rng.multivariate_normal(np.zeros(D), Q[s[t]])
    y = rng.poisson(np.exp(x @ C.T + base[s])).astype(float)
    return dict(Pt=Pt, A=A, Q=Q, C=C, base=base, s=s, x=x, y=y)


def test_two_mode_classification_accuracy():
    S = two_mode_data()
    r = hybrid_filter(S["y"], S["Pt"], S["A"], S["Q"], np.zeros(D), 0.1 * np.eye(D), C=S["C"],
                      baseline=S["base"])
    acc = np.mean(r.modes == S["s"])
    assert acc >= 0.90, acc
    assert r.mode_probabilities.shape == (T, 2)
    np.testing.assert_allclose(r.mode_probabilities.sum(1), 1.0, atol=1e-12)
    assert set(np.unique(r.modes)) <= {0, 1}
    # the mixed state estimate tracks the truth
    assert np.corrcoef(r.means[:, 0], S["x"][:, 0])[0, 1] > 0.8


def test_reduces_to_ppaf_with_identical_modes():
    """Two copies of one model: mixing changes nothing, the estimate is the PPAF's, and the
    mode probabilities follow the chain's prior alone."""
    S = two_mode_data(seed=1)
    A, Q, C, b = S["A"][1], S["Q"][1], S["C"], S["base"][1]
    Pt = np.array([[0.9, 0.1], [0.3, 0.7]])
    p0 = np.array([0.2, 0.8])
    r = hybrid_filter(S["y"], Pt, A, Q, np.zeros(D), 0.1 * np.eye(D), C=C, baseline=b,
                      initial_mode_probs=p0)
    ref = ppaf_filter(S["y"], A, Q, np.zeros(D), 0.1 * np.eye(D), C=C, baseline=b)
    np.testing.assert_allclose(r.means, ref.filtered_means, atol=1e-10)
    np.testing.assert_allclose(r.covs, ref.filtered_covs, atol=1e-10)
    np.testing.assert_allclose(r.log_likelihoods, ref.log_likelihoods, atol=1e-8)
    prior = [p0]
    for _ in range(T - 1):
        prior.append(prior[-1] @ Pt)
    np.testing.assert_allclose(r.mode_probabilities, np.array(prior), atol=1e-10)


def test_bad_input():
    S = two_mode_data(seed=2)
    args = (S["A"], S["Q"], np.zeros(D), np.eye(D))
    with pytest.raises(ValueError, match="rows summing to 1"):
        hybrid_filter(S["y"], np.array([[0.5, 0.4], [0.1, 0.9]]), *args, C=S["C"])
    with pytest.raises(ValueError, match="C must have shape"):
        hybrid_filter(S["y"][:, :5], S["Pt"], *args, C=S["C"])
    with pytest.raises(ValueError, match=r"Q\[1\] must be positive definite"):
        hybrid_filter(S["y"], S["Pt"], S["A"], np.stack([np.eye(D), -np.eye(D)]),
                      np.zeros(D), np.eye(D), C=S["C"])
    with pytest.raises(ValueError, match="bin_width"):
        hybrid_filter(S["y"], S["Pt"], *args, C=S["C"], bin_width=0)
