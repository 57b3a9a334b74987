"""spikessm: state-space models for neural recordings, fitted and judged honestly.

Public API (linear-Gaussian engine):

- :class:`LinearGaussianSSM`: EM, SGD, filter, smooth, posterior predictive, forecast,
  sample, log_prob / score.
- :func:`fit_linear_gaussian_em`: nSTAT-compatible KF_EM.
- :class:`PoissonLDS` (Poisson LDS and hybrid Poisson + Gaussian, Laplace EM) with the
  nSTAT-compatible :func:`fit_point_process_em`, :func:`fit_hybrid_em` and their
  ``*_best_of`` restarts; :func:`point_process_predictive_ll`,
  :func:`hybrid_predictive_ll`, :func:`smc_log_likelihood`, :func:`co_smoothing`.
- :class:`PoissonHMM`: Poisson hidden Markov models by exact EM.
- :mod:`spikessm.evaluation`: canonical gauge, Procrustes / affine alignment,
  subspace angles, eigenvalue matching, held-out scores.
"""

from .evaluation import (
    CoSmoothingResult,
    MultiRestartResult,
    PredictiveLogLik,
    SMCLogLik,
    StateDimSweep,
    affine_align,
    canonical_transform,
    canonicalize,
    co_smoothing,
    constant_rate_predictive_ll,
    eigenvalue_match,
    fit_hybrid_em_best_of,
    fit_point_process_em_best_of,
    hybrid_predictive_ll,
    max_subspace_angle,
    point_process_predictive_ll,
    procrustes_align,
    select_state_dim,
    smc_log_likelihood,
    subspace_angles,
    transform_latents,
)
from .models.lgssm import (
    EMResult,
    ForecastResult,
    LGSSMParams,
    LinearGaussianEMResult,
    LinearGaussianSSM,
    PosteriorResult,
    PredictiveResult,
    SGDResult,
    fit_linear_gaussian_em,
    make_params,
)
from .models.plds import (
    HybridEMResult,
    PLDSFitResult,
    PLDSParams,
    PLDSPosterior,
    PointProcessEMResult,
    PoissonLDS,
    fit_hybrid_em,
    fit_point_process_em,
    make_plds_params,
)
from .models.poisson_hmm import (
    HMMFitResult,
    NStatesSelection,
    PoissonHMM,
    PoissonHMMParams,
    align_states,
    select_n_states,
    transition_matrix_from_rates,
)

__version__ = "0.1.0"

__all__ = [
    "CoSmoothingResult", "HybridEMResult", "MultiRestartResult", "PLDSFitResult",
    "PLDSParams", "PLDSPosterior", "PointProcessEMResult", "PoissonLDS", "PredictiveLogLik",
    "SMCLogLik", "StateDimSweep", "co_smoothing", "constant_rate_predictive_ll",
    "fit_hybrid_em", "fit_hybrid_em_best_of", "fit_point_process_em",
    "fit_point_process_em_best_of", "hybrid_predictive_ll", "make_plds_params",
    "point_process_predictive_ll", "select_state_dim", "smc_log_likelihood",
    "HMMFitResult", "NStatesSelection", "PoissonHMM", "PoissonHMMParams", "align_states",
    "select_n_states", "transition_matrix_from_rates",
    "EMResult", "ForecastResult", "LGSSMParams", "LinearGaussianEMResult",
    "LinearGaussianSSM", "PosteriorResult", "PredictiveResult", "SGDResult",
    "__version__", "affine_align", "canonical_transform", "canonicalize",
    "eigenvalue_match", "fit_linear_gaussian_em", "make_params", "max_subspace_angle",
    "procrustes_align", "subspace_angles", "transform_latents",
]
