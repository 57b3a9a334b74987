"""Parameter recovery at the corners of the issue's range (d 2..8, N 10..120, T 2k..20k)."""

import numpy as np
import pytest

from spikessm import LinearGaussianSSM, make_params
from spikessm.evaluation import eigenvalue_match, max_subspace_angle


def make_truth(d, N, seed):
    rng = np.random.default_rng(seed)
    # block-rotation dynamics with distinct, well-separated eigenvalues
    A = np.zeros((d, d))
    for i, j in enumerate(range(0, d, 2)):
        rad, th = 0.95 - 0.05 * i, 0.1 + 0.15 * i
        blk = rad * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        k = min(2, d - j)
        A[j:j + k, j:j + k] = blk[:k, :k] if k == 2 else rad
    return make_params(A=A, C=rng.standard_normal((N, d)), Q=0.1 * np.eye(d),
                       R=np.diag(rng.uniform(0.5, 1.5, N)), d=rng.standard_normal(N))


@pytest.mark.parametrize("d,N,T", [(2, 10, 2000), (8, 120, 20000)])
def test_recovery(d, N, T):
    truth = make_truth(d, N, seed=d)
    model = LinearGaussianSSM(d, N)
    _, y = model.sample(truth, T, seed=1)
    _, y_test = model.sample(truth, T, seed=2)
    fit = model.fit_em(y, max_iter=300, tol=1e-9, progress=False)
    assert fit.path == "steady"
    assert np.all(np.diff(fit.log_likelihoods) >= -1e-9 * np.abs(fit.log_likelihoods[:-1]))
    ll_fit = model.log_prob(fit.params, y_test)
    ll_true = model.log_prob(truth, y_test)
    assert (ll_true - ll_fit) / abs(ll_true) < 0.005
    assert max_subspace_angle(fit.params.C, truth.C) < 5.0
    assert eigenvalue_match(fit.params.A, truth.A) < 0.02
