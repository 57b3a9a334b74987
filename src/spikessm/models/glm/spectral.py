"""Conditional, frequency-resolved Granger causality between continuous signals
(Geweke 1984; Ding, Chen & Bressler 2006), from vector autoregressions fitted with
``statsmodels.tsa.api.VAR``.

Full model on all ``C`` channels: ``A(L) x_t = e_t``, ``A(z) = I - sum_k A_k z^k``, noise
covariance ``S``, transfer function ``H(f) = A(e^{-i 2 pi f / fs})^{-1}``. For target
``i``, source ``j`` and the remaining channels ``r``, the *reduced* model is the VAR on
``(i, r)`` without ``j`` (coefficients ``A*``, noise covariance ``S*``). Geweke's
conditional measure is

    f_{j -> i | r}(f) = ln( S*_ii / ( S_ii |Q_ii(f)|^2 ) ),
    Q_ii(f) = [A*(f)]_{i, (i, r)} H(f)_{(i, r), :} l,

where ``l = S[:, i] / S_ii`` is the first column of the unit lower-triangular factor that
makes the full model's target noise uncorrelated with the others (Geweke's normalisation;
only this column enters ``Q_ii``), and the reduced row ``[A*(f)]_{i, .}`` is the first row
of the inverse of its normalised transfer function (the normalising factor's inverse has
first row ``e_1'``). ``Q_ii`` is the part of ``i``'s reduced-model innovation that comes
from ``i``'s own full-model innovation. The time-domain conditional measure is
``F_{j -> i | r} = ln(S*_ii / S_ii)``; in theory it equals the average of
``f_{j -> i | r}(f)`` over ``[-fs/2, fs/2]``. With finite-order reduced models the spectrum
can dip slightly below zero at some frequencies (a known property of the two-model
construction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from statsmodels.tsa.api import VAR, AutoReg

from ..._checks import as_float_array, check_bin_width, check_int

__all__ = ["SpectralGranger", "spectral_granger", "var_transfer"]


@dataclass(frozen=True)
class SpectralGranger:
    """Conditional spectral Granger causality; arrays indexed ``[target, source, ...]``.

    Attributes:
      freqs: ``(F,)`` frequencies in Hz, 0 to ``fs / 2``.
      spectrum: ``(C, C, F)`` ``f_{source -> target | rest}(f)`` (NaN on the diagonal).
      time_domain: ``(C, C)`` ``ln(S*_ii / S_ii)`` (NaN on the diagonal).
      order: VAR order used for the full and every reduced model.
      fs: sampling rate (Hz).
      coefs: ``(order, C, C)`` full-model VAR coefficients ``A_k``.
      noise_cov: ``(C, C)`` full-model noise covariance (maximum likelihood).
    """

    freqs: np.ndarray
    spectrum: np.ndarray
    time_domain: np.ndarray
    order: int
    fs: float
    coefs: np.ndarray
    noise_cov: np.ndarray

    def peak_frequency(self, target: int, source: int) -> float:
        """Frequency (Hz) where ``f_{source -> target | rest}`` is largest."""
        return float(self.freqs[np.argmax(self.spectrum[target, source])])


def var_transfer(coefs, freqs, fs: float) -> np.ndarray:
    """``(F, C, C)`` ``A(f) = I - sum_k A_k exp(-i 2 pi f k / fs)`` (the inverse transfer
    function) of VAR coefficients ``coefs`` ``(p, C, C)`` at ``freqs`` (Hz)."""
    A = np.asarray(coefs)
    p, C, _ = A.shape
    z = np.exp(-2j * np.pi * np.outer(freqs, np.arange(1, p + 1)) / fs)  # (F, p)
    return np.eye(C)[None] - np.einsum("fk,kab->fab", z, A)


def _fit_var(data, order):
    """``(coefs (p, C, C), noise covariance (C, C))``, least squares with a constant;
    maximum-likelihood noise covariance (residual sum of squares / n) in both cases."""
    if data.shape[1] == 1:  # statsmodels' VAR needs >= 2 variables: univariate AR
        res = AutoReg(data[:, 0], lags=order, trend="c").fit()
        return (np.asarray(res.params[1:]).reshape(order, 1, 1),
                np.array([[float(res.sigma2)]]))
    res = VAR(data).fit(order, trend="c")
    return np.asarray(res.coefs), np.asarray(res.sigma_u_mle)


def spectral_granger(data, *, fs: float, order: int | None = None, max_order: int = 20,
                     n_freqs: int = 257) -> SpectralGranger:
    """Conditional frequency-resolved Granger causality between all channel pairs.

    Args:
      data: ``(T, C)`` continuous signals (e.g. LFP channels), ``C >= 2``, finite.
      fs: sampling rate in Hz (> 0).
      order: VAR order; None selects it by AIC up to ``max_order``
        (``statsmodels`` ``VAR.select_order``) on the full model.
      max_order: largest order considered when ``order`` is None.
      n_freqs: number of frequencies from 0 to ``fs / 2``.

    Returns:
      :class:`SpectralGranger` (``C + 1`` VAR fits: the full model and one reduced model
      per left-out source, shared by all targets).
    """
    x = as_float_array(data, "data")
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"data must have shape (T, C) with C >= 2 channels, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("data must be finite (no NaN or inf)")
    const = np.flatnonzero(np.ptp(x, axis=0) == 0) if x.shape[0] else np.zeros(0, int)
    if const.size:
        raise ValueError(f"data channel(s) {const.tolist()} are constant: a VAR needs "
                         "every channel to vary")
    if np.max(np.abs(x), initial=0.0) > 1e150:
        raise ValueError("data values are too large (above 1e150: their squares overflow "
                         "float64); rescale the data")
    fs = check_bin_width(fs, "fs")
    n_freqs = check_int(n_freqs, "n_freqs", 2)
    T, C = x.shape
    if order is None:
        max_order = check_int(max_order, "max_order", 1)
        if T <= (max_order + 1) * C + 1:
            raise ValueError(f"data has too few samples (T = {T}) for max_order = {max_order}")
        order = max(int(VAR(x).select_order(max_order, trend="c").selected_orders["aic"]), 1)
    order = check_int(order, "order", 1)
    if T <= order * C + 1 + 10:
        raise ValueError(f"data has too few samples (T = {T}) for a VAR of order {order} "
                         f"on {C} channels")
    freqs = np.linspace(0.0, fs / 2.0, n_freqs)
    coefs, S = _fit_var(x, order)
    H = np.linalg.inv(var_transfer(coefs, freqs, fs))  # (F, C, C)
    spec = np.full((C, C, n_freqs), np.nan)
    tdom = np.full((C, C), np.nan)
    for j in range(C):
        keep = [c for c in range(C) if c != j]
        coefs_r, S_r = _fit_var(x[:, keep], order)
        A_r = var_transfer(coefs_r, freqs, fs)  # (F, C-1, C-1)
        for a, i in enumerate(keep):
            lcol = S[:, i] / S[i, i]
            Q = np.einsum("fk,fkc,c->f", A_r[:, a, :], H[:, keep, :], lcol)
            spec[i, j] = np.log(S_r[a, a] / (S[i, i] * np.abs(Q) ** 2))
            tdom[i, j] = np.log(S_r[a, a] / S[i, i])
    off = ~np.eye(C, dtype=bool)
    if not (np.all(np.isfinite(spec[off])) and np.all(np.isfinite(tdom[off]))):
        raise FloatingPointError("the spectral Granger measures are not finite: a VAR noise "
                                 "covariance is singular (collinear or constant channels?)")
    return SpectralGranger(freqs=freqs, spectrum=spec, time_domain=tdom, order=order, fs=fs,
                           coefs=coefs, noise_cov=S)
