"""Point-process GLMs (encoding models), goodness of fit, and Granger causality.

* :mod:`.bases` -- covariate bases (Gaussian bumps, Zernike, B-splines, tensor products).
* :mod:`.history` -- strictly causal spike-history window features.
* :mod:`.fit` -- :func:`fit_glm` (Poisson/log, Bernoulli/logit; covariates, own history,
  ensemble coupling), :func:`log_intensity` for decoders.
* :mod:`.goodness` -- time-rescaling KS test with the discrete-time correction.
* :mod:`.granger` -- point-process Granger causality between neurons.
* :mod:`.spectral` -- conditional frequency-resolved Granger causality (VAR).

See ``docs/glm.md``.
"""

from .bases import BSpline1D, GaussianBumps, TensorProduct, Zernike
from .fit import GLMFit, fit_glm, log_intensity
from .goodness import TimeRescaling, time_rescaling, time_rescaling_fit
from .granger import GrangerResult, granger_causality, simulate_network
from .history import history_features
from .spectral import SpectralGranger, spectral_granger

__all__ = ["BSpline1D", "GaussianBumps", "TensorProduct", "Zernike", "GLMFit", "fit_glm",
           "log_intensity", "TimeRescaling", "time_rescaling", "time_rescaling_fit",
           "GrangerResult", "granger_causality", "simulate_network", "history_features",
           "SpectralGranger", "spectral_granger"]
