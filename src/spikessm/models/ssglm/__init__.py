"""State-space GLM across trials (SSGLM) and behavioural learning curves."""

from .basis import history_design, history_lags, spline_basis, unit_pulse_basis
from .learning import LearningCurveResult, learning_curve
from .model import (
    GLMPSTHResult,
    PerTrialGLMResult,
    SSGLMResult,
    glm_psth,
    learning_trial,
    per_trial_glm,
    rate_comparison_matrix,
    sample_theta,
    ssglm,
    ssglmFB,
    window_rates,
)

__all__ = ["GLMPSTHResult", "LearningCurveResult", "PerTrialGLMResult", "SSGLMResult",
           "glm_psth", "history_design", "history_lags", "learning_curve", "learning_trial",
           "per_trial_glm", "rate_comparison_matrix", "sample_theta", "spline_basis", "ssglm",
           "ssglmFB", "unit_pulse_basis", "window_rates"]
