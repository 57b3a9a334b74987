"""spikessm: state-space models for neural recordings."""

from .models.lgssm import (
    EMResult,
    ForecastResult,
    LGSSMParams,
    LinearGaussianSSM,
    PosteriorResult,
    PredictiveResult,
    make_params,
)

__version__ = "0.1.0"

__all__ = ["EMResult", "ForecastResult", "LGSSMParams", "LinearGaussianSSM",
           "PosteriorResult", "PredictiveResult", "make_params", "__version__"]
