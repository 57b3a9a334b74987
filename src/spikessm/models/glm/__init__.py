"""Point-process GLMs (encoding models), goodness of fit, and Granger causality.

* :mod:`.bases` -- covariate bases (Gaussian bumps, Zernike, B-splines, tensor products).
"""

from .bases import BSpline1D, GaussianBumps, TensorProduct, Zernike

__all__ = ["BSpline1D", "GaussianBumps", "TensorProduct", "Zernike"]
