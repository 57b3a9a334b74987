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
- :class:`SharedPoissonLDS`, :class:`SharedLinearGaussianSSM`: one latent dynamics shared
  across recordings with their own neurons.
- Point-process encoding and decoding: :func:`fit_glm` (bases, history, coupling, KS
  goodness of fit), :func:`granger_causality`, :func:`spectral_granger`; the adaptive
  filter :func:`ppaf_filter` / :func:`ppaf_smoother`, :func:`fixed_lag_smoother`,
  :func:`goal_directed_filter`, the hybrid filter :func:`hybrid_filter`, nSTAT-compatible
  :func:`cmgf_poisson_filter` / :func:`cmgf_poisson_smoother`.
- :func:`ssglm` / :func:`ssglmFB` (state-space GLM across trials) and
  :func:`learning_curve` (behavioural learning).
- Data and files: :class:`SpikeTrials`, :func:`bin_spike_times`, :func:`read` (NWB, .mat,
  .npz, .csv), :func:`from_pynapple`, :func:`from_neo`; :func:`save` / :func:`load`
  (no pickle); :func:`sweep` (Dask).
- :mod:`spikessm.evaluation`: canonical gauge, Procrustes / affine alignment,
  subspace angles, eigenvalue matching, held-out scores.
"""

from .data import (
    SpikeTrials,
    bin_spike_times,
    from_neo,
    from_pynapple,
    read,
    read_csv,
    read_mat,
    read_npz,
    read_nwb,
    rebin_counts,
    resample_covariate,
)
from .distributed import SweepResult, sweep
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
from .io import load, load_metadata, save
from .models.decoding import (
    CMGFPoissonFilterResult,
    HybridFilterResult,
    PointProcessAdaptiveFilter,
    PPAFResult,
    StaticDecoderResult,
    bayesian_decoder,
    cmgf_poisson_filter,
    cmgf_poisson_smoother,
    fixed_lag_smoother,
    goal_directed_filter,
    hybrid_filter,
    kalman_decoder,
    ppaf_filter,
    ppaf_smoother,
)
from .models.glm import (
    BSpline1D,
    GaussianBumps,
    GLMFit,
    GrangerResult,
    SpectralGranger,
    TensorProduct,
    TimeRescaling,
    Zernike,
    fit_glm,
    granger_causality,
    history_features,
    log_intensity,
    simulate_network,
    spectral_granger,
    time_rescaling,
    time_rescaling_fit,
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
from .models.shared import (
    SharedFitResult,
    SharedLGSSMParams,
    SharedLinearGaussianSSM,
    SharedPLDSParams,
    SharedPoissonLDS,
    align_dynamics,
    shared_canonical_transform,
)
from .models.ssglm import (
    GLMPSTHResult,
    LearningCurveResult,
    PerTrialGLMResult,
    SSGLMResult,
    glm_psth,
    learning_curve,
    learning_trial,
    per_trial_glm,
    rate_comparison_matrix,
    ssglm,
    ssglmFB,
    window_rates,
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
    # data and files
    "SpikeTrials", "bin_spike_times", "from_neo", "from_pynapple", "read", "read_csv",
    "read_mat", "read_npz", "read_nwb", "rebin_counts", "resample_covariate",
    "load", "load_metadata", "save", "SweepResult", "sweep",
    # decoding
    "CMGFPoissonFilterResult", "HybridFilterResult", "PointProcessAdaptiveFilter",
    "PPAFResult", "StaticDecoderResult", "bayesian_decoder", "cmgf_poisson_filter",
    "cmgf_poisson_smoother", "fixed_lag_smoother", "goal_directed_filter", "hybrid_filter",
    "kalman_decoder", "ppaf_filter", "ppaf_smoother",
    # encoding GLMs and causality
    "BSpline1D", "GaussianBumps", "GLMFit", "GrangerResult", "SpectralGranger",
    "TensorProduct", "TimeRescaling", "Zernike", "fit_glm", "granger_causality",
    "history_features", "log_intensity", "simulate_network", "spectral_granger",
    "time_rescaling", "time_rescaling_fit",
    # shared across recordings
    "SharedFitResult", "SharedLGSSMParams", "SharedLinearGaussianSSM", "SharedPLDSParams",
    "SharedPoissonLDS", "align_dynamics", "shared_canonical_transform",
    # SSGLM and learning curves
    "GLMPSTHResult", "LearningCurveResult", "PerTrialGLMResult", "SSGLMResult", "glm_psth",
    "learning_curve", "learning_trial", "per_trial_glm", "rate_comparison_matrix", "ssglm",
    "ssglmFB", "window_rates",
]
