"""Poisson linear dynamical system and hybrid (Poisson + Gaussian) observations."""

from .compat import (
    HybridEMResult,
    PointProcessEMResult,
    fit_hybrid_em,
    fit_point_process_em,
)
from .model import PLDSFitResult, PLDSPosterior, PoissonLDS, canonical_params
from .params import PLDSParams, make_plds_params

__all__ = ["HybridEMResult", "PointProcessEMResult", "fit_hybrid_em", "fit_point_process_em",
           "PLDSFitResult", "PLDSPosterior", "PLDSParams", "PoissonLDS", "canonical_params",
           "make_plds_params"]
