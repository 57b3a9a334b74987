"""Granger causality: exact recovery of a simulated 6-neuron directed network under
multiple-comparison control, one likelihood ratio against statsmodels fits written here,
conditional spectral Granger against the true-parameter Geweke spectrum of a simulated
VAR, the spectral/time-domain identity, and input validation."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from spikessm.models.glm.granger import granger_causality, simulate_network
from spikessm.models.glm.history import history_features
from spikessm.models.glm.spectral import spectral_granger, var_transfer

ENS = (1, 2, 5, 10)
BW = 0.002
TRUE = {(0, 1): 1.5, (0, 2): 1.2, (2, 3): 1.2, (3, 4): 1.5, (4, 5): -2.0, (5, 0): 1.2}


@pytest.fixture(scope="module")
def network():
    N = 6
    K = np.zeros((N, N, 3))
    for (s, t), w in TRUE.items():
        K[t, s] = [w, 0.5 * w, 0.2 * w]
    y = simulate_network(20000, bin_width=BW, baseline_rate=np.full(N, 30.0), coupling=K,
                         ensemble=ENS, seed=0)
    return y, granger_causality(y, bin_width=BW, history=ENS, link="logit")


@pytest.mark.parametrize("correction", ["fdr_bh", "holm"])
def test_network_edges_exact(network, correction):
    res = network[1].with_correction(correction)
    assert res.correction == correction
    truth = sorted((s, t, int(np.sign(w))) for (s, t), w in TRUE.items())
    assert sorted(res.edges) == truth  # every true edge with its sign, and no false edge
    assert res.df == 3 and res.full.coupling.shape == (6, 6, 3)
    off = ~np.eye(6, dtype=bool)
    assert np.all(res.deviance_difference[off] >= 0)
    np.testing.assert_allclose(res.pvalues[off], stats.chi2.sf(res.deviance_difference[off], 3))
    if correction == "fdr_bh":
        # Benjamini-Hochberg step-up written out: reject the k smallest p with p_(k) <= k a / m
        p = np.sort(res.pvalues[off])
        m = p.size
        k = np.max(np.nonzero(p <= np.arange(1, m + 1) * 0.05 / m)[0]) + 1
        assert res.significant.sum() == k


def test_likelihood_ratio_matches_statsmodels(network):
    """Target 1, source 0: full and reduced Bernoulli GLMs fitted with statsmodels here."""
    y, res = network
    H = history_features(y, ENS)  # (T, N, 3)
    off = np.full(len(y), np.log(BW))

    def llf(sources):
        X = sm.add_constant(H[:, sources, :].reshape(len(y), -1))
        return sm.GLM(y[:, 1], X, family=sm.families.Binomial(), offset=off).fit().llf

    full = [1, 0, 2, 3, 4, 5]
    reduced = [1, 2, 3, 4, 5]
    np.testing.assert_allclose(res.deviance_difference[1, 0], 2 * (llf(full) - llf(reduced)),
                               rtol=1e-6)
    np.testing.assert_allclose(res.full.log_likelihood[1], llf(full), rtol=1e-9)


# ---------------------------------------------------------------------------------------
# conditional spectral Granger on a simulated VAR: 0 -> 1 -> 2, channel 0 oscillates at 40 Hz
FS, F0, R = 200.0, 40.0, 0.95
A1 = np.array([[2 * R * np.cos(2 * np.pi * F0 / FS), 0, 0], [0.6, 0.3, 0], [0, 0.6, 0.3]])
A2 = np.array([[-R * R, 0, 0], [0, 0, 0], [0, 0, 0]])


def _simulate_var(T, seed):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(T + 200, 3))
    x = np.zeros((T + 200, 3))
    for t in range(2, T + 200):
        x[t] = A1 @ x[t - 1] + A2 @ x[t - 2] + e[t]
    return x[200:]


def test_conditional_spectral_granger_peaks_at_coupling():
    x = _simulate_var(6000, seed=3)
    g = spectral_granger(x, fs=FS, order=4, n_freqs=257)
    # true Geweke spectrum of 0 -> 1 (channel 2 does not feed back, so conditional ==
    # bivariate); unit noise covariance: f = ln(S_11 / (S_11 - |H_10|^2))
    H = np.linalg.inv(var_transfer(np.stack([A1, A2]), g.freqs, FS))
    S11 = np.sum(np.abs(H[:, 1, :]) ** 2, axis=1)
    true = np.log(S11 / (S11 - np.abs(H[:, 1, 0]) ** 2))
    f_true = g.freqs[np.argmax(true)]
    assert abs(f_true - F0) < 2.0
    assert abs(g.peak_frequency(1, 0) - f_true) < 3.0
    assert abs(g.peak_frequency(2, 1) - f_true) < 5.0 or np.ptp(g.spectrum[2, 1]) < 0.5
    # the indirect 0 -> 2 path vanishes once channel 1 is conditioned on ...
    assert np.max(g.spectrum[2, 0]) < 0.05
    for tgt, src in [(0, 1), (0, 2), (1, 2)]:
        assert np.max(g.spectrum[tgt, src]) < 0.1
    # ... but not pairwise (no conditioning): spurious 0 -> 2 at the same frequency
    g2 = spectral_granger(x[:, [0, 2]], fs=FS, order=4, n_freqs=257)
    assert np.max(g2.spectrum[1, 0]) > 0.5 and abs(g2.peak_frequency(1, 0) - f_true) < 3.0
    # Geweke's identity: the frequency average equals the time-domain measure
    avg = np.trapezoid(g.spectrum, g.freqs, axis=-1) / (FS / 2)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(avg[off], g.time_domain[off], atol=0.02)


def test_granger_rejects_bad_input(network):
    y = network[0][:500]
    with pytest.raises(ValueError, match="bin_width"):
        granger_causality(y, bin_width=0.0, history=ENS)
    with pytest.raises(ValueError, match="correction"):
        granger_causality(y, bin_width=BW, history=ENS, correction="bh")
    with pytest.raises(ValueError, match="alpha"):
        granger_causality(y, bin_width=BW, history=ENS, alpha=1.5)
    with pytest.raises(ValueError, match="correction"):
        network[1].with_correction("fdr")
    with pytest.raises(ValueError, match="features must have shape"):
        granger_causality(y, bin_width=BW, history=ENS, features=np.zeros((400, 2)))
    with pytest.raises(ValueError, match="shape"):
        spectral_granger(np.zeros((100, 1)), fs=100.0)
    with pytest.raises(ValueError, match="fs"):
        spectral_granger(np.random.default_rng(0).normal(size=(100, 2)), fs=-1.0)
    with pytest.raises(ValueError, match="finite"):
        spectral_granger(np.full((100, 2), np.nan), fs=100.0)
    with pytest.raises(ValueError, match="coupling must have shape"):
        simulate_network(10, bin_width=BW, baseline_rate=np.ones(3), coupling=np.zeros((3, 3, 2)),
                         ensemble=ENS, seed=0)


def test_figures_show_the_results(network):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikessm.models.glm.goodness import time_rescaling
    from spikessm.plotting.glm import plot_granger_spectrum, plot_ks, plot_network

    y, res = network
    fig = plot_network(res)
    M = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(M, np.where(res.significant, res.sign * np.nan_to_num(
        res.deviance_difference), 0.0))
    q = np.full(len(y), y[:, 0].mean())
    ks = time_rescaling(y[:, 0], q, seed=1)
    fig2 = plot_ks(ks)
    np.testing.assert_array_equal(fig2.axes[0].lines[-1].get_ydata(), ks.z)
    g = spectral_granger(_simulate_var(600, seed=1), fs=FS, order=2, n_freqs=33)
    fig3 = plot_granger_spectrum(g, pairs=[(0, 1)])
    np.testing.assert_array_equal(fig3.axes[0].lines[0].get_ydata(), g.spectrum[1, 0])
    plt.close("all")
