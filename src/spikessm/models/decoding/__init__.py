"""Decoding a latent state from spikes: the point-process adaptive filter (PPAF) and its
smoothers, the goal-directed and hybrid (PPHF) variants, nSTAT-compatible CMGF Poisson
filter / smoother functions, and static Bayesian and Kalman decoders as baselines."""

from .baselines import bayesian_decoder, kalman_decoder
from .cmgf import cmgf_poisson_filter, cmgf_poisson_smoother
from .ppaf import (
    PointProcessAdaptiveFilter,
    fixed_lag_smoother,
    goal_directed_filter,
    ppaf_filter,
    ppaf_smoother,
)
from .pphf import hybrid_filter
from .results import (
    CMGFPoissonFilterResult,
    HybridFilterResult,
    PPAFResult,
    StaticDecoderResult,
)

__all__ = ["CMGFPoissonFilterResult", "HybridFilterResult", "PPAFResult",
           "PointProcessAdaptiveFilter", "StaticDecoderResult", "bayesian_decoder",
           "cmgf_poisson_filter",
           "cmgf_poisson_smoother", "fixed_lag_smoother", "goal_directed_filter",
           "hybrid_filter", "kalman_decoder", "ppaf_filter", "ppaf_smoother"]
