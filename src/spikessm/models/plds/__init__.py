"""Poisson linear dynamical system and hybrid (Poisson + Gaussian) observations."""

from .model import PLDSFitResult, PLDSPosterior, PoissonLDS, canonical_params
from .params import PLDSParams, make_plds_params

__all__ = ["PLDSFitResult", "PLDSPosterior", "PLDSParams", "PoissonLDS", "canonical_params",
           "make_plds_params"]
