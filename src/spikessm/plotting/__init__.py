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

from .decoding import plot_decoded_trajectory, plot_decoding_error  # noqa: E402
from .glm import plot_granger_spectrum, plot_ks, plot_network, plot_place_fields  # noqa: E402
from .shared import plot_shared_trajectories, plot_shared_vs_separate  # noqa: E402
from .ssglm import (  # noqa: E402
    plot_behavioural_learning_curve,
    plot_rate_comparison,
    plot_rate_surface,
    plot_ssglm_drift,
)

__all__ += ["plot_decoded_trajectory", "plot_decoding_error", "plot_granger_spectrum",
            "plot_ks", "plot_network", "plot_place_fields", "plot_shared_trajectories",
            "plot_shared_vs_separate", "plot_behavioural_learning_curve", "plot_rate_comparison",
            "plot_rate_surface", "plot_ssglm_drift"]
