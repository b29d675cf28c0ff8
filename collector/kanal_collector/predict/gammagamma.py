"""Gamma-Gamma: what a customer spends per purchase.

Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (after Colombo &
Jiang 1999). A customer's purchase values are Gamma(p, ν) with ν ~ Gamma(q, γ) across
customers; spend is independent of how often they buy. A customer is summarised by x,
the number of repeat purchases with a value, and m, their average value. Fitted on
the customers with at least one repeat purchase, by maximum likelihood with
scipy.optimize on the parameters' logarithms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

Array = NDArray[np.float64]


@dataclass(frozen=True)
class GammaGamma:
    """Fitted (or planted) Gamma-Gamma parameters, in the shop's currency."""

    p: float
    q: float
    gamma: float

    def as_dict(self) -> dict[str, float]:
        """{'p': …, 'q': …, 'gamma': …}"""
        return {"p": self.p, "q": self.q, "gamma": self.gamma}


@dataclass(frozen=True)
class GammaGammaFit:
    """The result of a fit: parameters, the log-likelihood at them, and how it went."""

    params: GammaGamma
    log_likelihood: float
    customers: int
    converged: bool
    message: str


def log_likelihood(params: GammaGamma, x: ArrayLike, m: ArrayLike) -> Array:
    """Each customer's log-likelihood of their average value m over x purchases
    (the note's equation 5, with the Jacobian of the average)."""
    x_ = np.asarray(x, dtype=np.float64)
    m_ = np.asarray(m, dtype=np.float64)
    p, q, g = params.p, params.q, params.gamma
    px = p * x_
    return np.asarray(
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g)
        + (px - 1.0) * np.log(m_) + px * np.log(x_) - (px + q) * np.log(g + m_ * x_),
        dtype=np.float64)


def _gradient(params: GammaGamma, x: Array, m: Array) -> Array:
    """d log-likelihood / d log(parameter), summed over customers (p, q, γ)."""
    p, q, g = params.p, params.q, params.gamma
    px = p * x
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - np.log(g + m * x))
    d_q = digamma(px + q) - digamma(q) + np.log(g) - np.log(g + m * x)
    d_g = q / g - (px + q) / (g + m * x)
    return np.array([p * d_p.sum(), q * d_q.sum(), g * d_g.sum()])


def fit(x: ArrayLike, m: ArrayLike) -> GammaGammaFit:
    """Maximum-likelihood parameters for customers with x ≥ 1 valued purchases of average
    m > 0. ValueError when there is nothing to fit."""
    x_ = np.asarray(x, dtype=np.float64)
    m_ = np.asarray(m, dtype=np.float64)
    if x_.size == 0:
        raise ValueError("no repeat customers with a purchase value to fit")
    if np.any(x_ < 1) or np.any(~np.isfinite(m_)) or np.any(m_ <= 0):
        raise ValueError("each customer needs x >= 1 and a finite average value m > 0")
    n = float(x_.size)

    def objective(theta: Array) -> tuple[float, Array]:
        params = GammaGamma(*(float(v) for v in np.exp(theta)))
        with np.errstate(all="ignore"):
            value = -float(np.sum(log_likelihood(params, x_, m_))) / n
            grad = -_gradient(params, x_, m_) / n
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return 1e300, np.zeros(3)
        return value, grad

    start = np.log([1.0, 2.0, max(float(np.mean(m_)), 1e-6)])
    result = minimize(objective, start, jac=True, method="L-BFGS-B",
                      bounds=[(-20.0, 20.0)] * 3,
                      options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9})
    params = GammaGamma(*(float(v) for v in np.exp(result.x)))
    ll = float(np.sum(log_likelihood(params, x_, m_)))
    at_bound = bool(np.any(np.abs(result.x) >= 19.99))
    gradient_norm = float(np.max(np.abs(objective(result.x)[1])))
    # The expected spend needs q > 1 (the mean of the population's average spend).
    converged = (bool(np.isfinite(ll)) and not at_bound and params.q > 1.0
                 and gradient_norm < 1e-5)
    message = ("converged" if converged else
               "a parameter ran to the edge of its range" if at_bound else
               "q <= 1: spend too dispersed for a finite mean" if params.q <= 1.0 else
               f"the optimiser stopped early: {result.message}")
    return GammaGammaFit(params, ll, int(n), converged, message)


def expected_spend(params: GammaGamma, x: ArrayLike, m: ArrayLike) -> Array:
    """E[value of a purchase | x, m] (the note's equation 6): a weighted mean of the
    population's mean γp/(q-1) and the customer's own average m. x = 0 (no valued
    repeat purchase) gives the population's mean."""
    x_ = np.asarray(x, dtype=np.float64)
    m_ = np.nan_to_num(np.asarray(m, dtype=np.float64), nan=0.0)
    p, q, g = params.p, params.q, params.gamma
    return np.asarray(p * (g + m_ * x_) / (p * x_ + q - 1.0), dtype=np.float64)
