"""Figures for point-process GLMs and Granger causality (matplotlib; every function
returns the Figure). pyplot is imported inside the functions."""

from __future__ import annotations

import numpy as np

from .hmm import _colors, _fig


def plot_ks(results, *, labels=None, ax=None, title: str = "Time-rescaling KS plot"):
    """KS plot: sorted rescaled intervals ``z`` against uniform quantiles, one line per
    :class:`~spikessm.models.glm.goodness.TimeRescaling` in ``results`` (one or a list),
    with the 45-degree line and the 95% band ``+-1.36/sqrt(n)`` of the first result."""
    res = results if isinstance(results, (list, tuple)) else [results]
    if not res:
        raise ValueError("results must hold at least one TimeRescaling")
    labs = labels if labels is not None else [None] * len(res)
    if len(labs) != len(res):
        raise ValueError(f"labels must have one entry per result ({len(res)})")
    fig, ax = _fig(ax, (4.5, 4.5))
    u = np.linspace(0, 1, 101)
    ax.plot(u, u, color="k", lw=0.8)
    b = res[0].bound
    ax.plot(u, np.clip(u + b, 0, 1), "k--", lw=0.6)
    ax.plot(u, np.clip(u - b, 0, 1), "k--", lw=0.6, label="95% bounds")
    for r, lab, c in zip(res, labs, _colors(len(res))):
        name = f"KS = {r.ks_statistic:.3f}" if lab is None else f"{lab} (KS = {r.ks_statistic:.3f})"
        ax.plot(r.uniform, r.z, color=c, lw=1.2, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("uniform quantiles")
    ax.set_ylabel("rescaled ISI quantiles z")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    ax.set_title(title)
    return fig


def plot_network(result, *, value: str = "signed", ax=None, title: str = "Granger causality"):
    """Network matrix of a :class:`~spikessm.models.glm.granger.GrangerResult`: rows are
    targets, columns sources. ``value="signed"`` shows ``sign * deviance difference`` for
    significant pairs (red excitatory, blue inhibitory, white not significant);
    ``"deviance"`` shows the deviance difference of every pair, significant ones ringed."""
    if value not in ("signed", "deviance"):
        raise ValueError(f"value must be 'signed' or 'deviance', got {value!r}")
    D = np.nan_to_num(result.deviance_difference)
    N = D.shape[0]
    fig, ax = _fig(ax, (4.8, 4.2))
    if value == "signed":
        M = np.where(result.significant, result.sign * D, 0.0)
        vmax = max(np.max(np.abs(M)), 1e-12)
        im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        label = "sign x deviance difference"
    else:
        im = ax.imshow(D, cmap="viridis")
        ti, sj = np.nonzero(result.significant)
        ax.scatter(sj, ti, s=120, facecolors="none", edgecolors="r", lw=1.2)
        label = "deviance difference"
    fig.colorbar(im, ax=ax, label=label, shrink=0.85)
    ax.set_xticks(range(N))
    ax.set_yticks(range(N))
    ax.set_xlabel("source neuron")
    ax.set_ylabel("target neuron")
    ax.set_title(f"{title} ({result.correction}, alpha = {result.alpha:g})", fontsize=9)
    return fig


def plot_granger_spectrum(result, pairs=None, *, ax=None,
                          title: str = "Conditional spectral Granger causality"):
    """``f_{source -> target | rest}(f)`` against frequency for ``pairs`` of
    ``(source, target)`` (default: every ordered pair) of a
    :class:`~spikessm.models.glm.spectral.SpectralGranger`."""
    C = result.spectrum.shape[0]
    if pairs is None:
        pairs = [(j, i) for i in range(C) for j in range(C) if i != j]
    fig, ax = _fig(ax, (6, 3.8))
    for (j, i), c in zip(pairs, _colors(len(pairs))):
        ax.plot(result.freqs, result.spectrum[i, j], color=c, lw=1.2, label=f"{j} -> {i}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("Granger causality")
    ax.legend(frameon=False, fontsize=7, ncol=2)
    ax.set_title(title)
    return fig


def plot_place_fields(fit, basis, *, neurons=None, extent=(-1.0, 1.0, -1.0, 1.0),
                      n_grid: int = 60, radius: float | None = 1.0, positions=None,
                      ncols: int = 4, title: str = "Fitted place fields"):
    """Rate maps (Hz) ``exp(b + basis(x)' beta) `` of 2-D GLM fits on a grid over
    ``extent`` (x0, x1, y0, y1), masked outside ``radius`` (None: no mask), for
    ``neurons`` (default: the first 8). ``positions`` ``(T, 2)`` draws the path faintly."""
    import matplotlib.pyplot as plt

    from ..models.glm.fit import log_intensity

    if basis.dim != 2:
        raise ValueError(f"basis must be 2-D (dim == 2), got dim = {basis.dim}")
    idx = list(range(min(8, fit.n_neurons))) if neurons is None else list(neurons)
    gx = np.linspace(extent[0], extent[1], n_grid)
    gy = np.linspace(extent[2], extent[3], n_grid)
    X, Y = np.meshgrid(gx, gy)
    pts = np.stack([X, Y], -1)
    log_rate = log_intensity(fit, basis)(pts) - np.log(fit.bin_width)  # (n, n, N)
    if radius is not None:  # mask before exponentiating: no overflow outside the arena
        log_rate = np.where((np.hypot(X, Y) <= radius)[..., None], log_rate, np.nan)
    rate = np.exp(log_rate)
    ncols = min(ncols, len(idx))
    nrows = -(-len(idx) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.3 * nrows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(idx):
            ax.axis("off")
            continue
        i = idx[k]
        if positions is not None:
            ax.plot(positions[:, 0], positions[:, 1], color="0.85", lw=0.2, zorder=0)
        im = ax.imshow(rate[..., i], origin="lower", extent=extent, cmap="jet", zorder=1,
                       alpha=0.9)
        fig.colorbar(im, ax=ax, shrink=0.75, label="Hz")
        ax.set_title(f"cell {i}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig
