"""Linear-Gaussian state-space model."""

from .model import (
    EMResult,
    ForecastResult,
    LinearGaussianSSM,
    PosteriorResult,
    PredictiveResult,
)
from .params import LGSSMParams, make_params

__all__ = ["EMResult", "ForecastResult", "LGSSMParams", "LinearGaussianSSM",
           "PosteriorResult", "PredictiveResult", "make_params"]
