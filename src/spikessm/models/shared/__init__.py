"""Models shared across recordings: common latent dynamics, per-recording loadings."""

from .model import (
    SharedFitResult,
    SharedLGSSMParams,
    SharedLinearGaussianSSM,
    SharedPLDSParams,
    SharedPoissonLDS,
    align_dynamics,
    shared_canonical_transform,
    shared_params_from,
)

__all__ = ["SharedFitResult", "SharedLGSSMParams", "SharedLinearGaussianSSM",
           "SharedPLDSParams", "SharedPoissonLDS", "align_dynamics",
           "shared_canonical_transform", "shared_params_from"]
