"""Figures (matplotlib): one function per figure, each returns the Figure. pyplot is
imported lazily inside the functions."""

from .hmm import (
    plot_learning_curve,
    plot_ll_ecll_epochs,
    plot_ll_ecll_line,
    plot_n_states,
    plot_raster_states,
    plot_rates_comparison,
)

__all__ = ["plot_learning_curve", "plot_ll_ecll_epochs", "plot_ll_ecll_line", "plot_n_states",
           "plot_raster_states", "plot_rates_comparison"]

from .plds import (  # noqa: E402
    plot_latent_trajectories,
    plot_objective,
    plot_rates,
    plot_state_dim_sweep,
)

__all__ += ["plot_latent_trajectories", "plot_objective", "plot_rates", "plot_state_dim_sweep"]
