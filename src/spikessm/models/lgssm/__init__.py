"""Linear-Gaussian state-space model."""

from .compat import LinearGaussianEMResult, fit_linear_gaussian_em
from .model import (
    EMResult,
    ForecastResult,
    LinearGaussianSSM,
    PosteriorResult,
    PredictiveResult,
    SGDResult,
)
from .params import LGSSMParams, make_params

__all__ = ["EMResult", "ForecastResult", "LGSSMParams", "LinearGaussianEMResult",
           "LinearGaussianSSM", "PosteriorResult", "PredictiveResult", "SGDResult",
           "fit_linear_gaussian_em", "make_params"]
