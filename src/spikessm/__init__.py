"""spikessm: state-space models for neural recordings, fitted and judged honestly.

Public API (linear-Gaussian engine):

- :class:`LinearGaussianSSM`: EM, SGD, filter, smooth, posterior predictive, forecast,
  sample, log_prob / score.
- :func:`fit_linear_gaussian_em`: nSTAT-compatible KF_EM.
- :mod:`spikessm.evaluation`: canonical gauge, Procrustes / affine alignment,
  subspace angles, eigenvalue matching.
"""

from .evaluation import (
    affine_align,
    canonical_transform,
    canonicalize,
    eigenvalue_match,
    max_subspace_angle,
    procrustes_align,
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
    "HMMFitResult", "NStatesSelection", "PoissonHMM", "PoissonHMMParams", "align_states",
    "select_n_states", "transition_matrix_from_rates",
    "EMResult", "ForecastResult", "LGSSMParams", "LinearGaussianEMResult",
    "LinearGaussianSSM", "PosteriorResult", "PredictiveResult", "SGDResult",
    "__version__", "affine_align", "canonical_transform", "canonicalize",
    "eigenvalue_match", "fit_linear_gaussian_em", "make_params", "max_subspace_angle",
    "procrustes_align", "subspace_angles", "transform_latents",
]
