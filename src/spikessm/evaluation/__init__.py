"""Evaluation utilities for spikessm models (the gauge math itself lives in
:mod:`spikessm.models.gauge`, below every model that canonicalises its fits)."""

from spikessm.evaluation.cosmoothing import (
    CoSmoothingResult,
    co_smoothing,
    split_neurons,
    sqrt_gaussian_co_smoothing,
)
from spikessm.evaluation.predictive import (
    PredictiveLogLik,
    SMCLogLik,
    constant_rate_predictive_ll,
    hybrid_predictive_ll,
    point_process_predictive_ll,
    smc_log_likelihood,
)
from spikessm.evaluation.restarts import (
    MultiRestartResult,
    StateDimSweep,
    fit_hybrid_em_best_of,
    fit_point_process_em_best_of,
    select_state_dim,
)
from spikessm.models.gauge import (
    affine_align,
    canonical_transform,
    canonicalize,
    eigenvalue_match,
    max_subspace_angle,
    procrustes_align,
    subspace_angles,
    transform_latents,
    transform_params,
)

__all__ = [
    "CoSmoothingResult", "MultiRestartResult", "PredictiveLogLik", "SMCLogLik",
    "StateDimSweep", "co_smoothing", "constant_rate_predictive_ll", "fit_hybrid_em_best_of",
    "fit_point_process_em_best_of", "hybrid_predictive_ll", "point_process_predictive_ll",
    "select_state_dim", "smc_log_likelihood", "split_neurons", "sqrt_gaussian_co_smoothing",
    "affine_align",
    "canonical_transform",
    "canonicalize",
    "eigenvalue_match",
    "max_subspace_angle",
    "procrustes_align",
    "subspace_angles",
    "transform_latents",
    "transform_params",
]
