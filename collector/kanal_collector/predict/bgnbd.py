"""BG/NBD: how many orders a customer will place, and whether they are still a customer.

Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to
the Pareto/NBD Model", Marketing Science 24(2). While active, a customer buys as a
Poisson process with rate λ ~ Gamma(r, α); after each repeat purchase they leave for
good with probability p ~ Beta(a, b). A customer is summarised by x (repeat
purchases), t_x (time of the last purchase) and T (time since the first purchase), all
from the first purchase, in one time unit (Kanal uses days; the paper, weeks).

The parameters are fitted by maximum likelihood with scipy.optimize on their logarithms
(all four are positive). Identical (x, t_x, T) rows are counted once with a weight, so a
shop's million customers cost as many likelihood terms as it has distinct histories.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

Array = NDArray[np.float64]


@dataclass(frozen=True)
class BGNBD:
    """Fitted (or planted) BG/NBD parameters, in the time unit of the data."""

    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        """{'r': …, 'alpha': …, 'a': …, 'b': …}"""
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class BGNBDFit:
    """The result of a fit: parameters, the log-likelihood at them, and how it went."""

    params: BGNBD
    log_likelihood: float
    customers: int
    converged: bool
    message: str


def _arrays(*values: ArrayLike) -> list[Array]:
    return [np.asarray(v, dtype=np.float64) for v in values]


def log_likelihood(params: BGNBD, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:
    """Each customer's log-likelihood (FHL 2005, equation 6)."""
    x_, tx_, T_ = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = gammaln(r + x_) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x_) - gammaln(b) - gammaln(a + b + x_)
    a3 = -(r + x_) * np.log(alpha + T_)
    repeat = x_ > 0
    a4 = np.full_like(x_, -np.inf)
    xr = x_[repeat]
    a4[repeat] = (np.log(a) - np.log(b + xr - 1) - (r + xr) * np.log(alpha + tx_[repeat]))
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4), dtype=np.float64)


def _grouped(x: Array, t_x: Array, T: Array) -> tuple[Array, Array, Array, Array]:
    """Distinct (x, t_x, T) rows and how many customers share each."""
    if all(np.array_equal(v, np.floor(v)) for v in (x, t_x, T)) and x.size:
        # Whole numbers (days): one integer key a row is much faster than rows.
        span = int(max(t_x.max(), T.max())) + 1
        key = (x.astype(np.int64) * span + t_x.astype(np.int64)) * span + T.astype(np.int64)
        keys, counts = np.unique(key, return_counts=True)
        gx, rest = np.divmod(keys, span * span)
        gtx, gT = np.divmod(rest, span)
        return (gx.astype(np.float64), gtx.astype(np.float64), gT.astype(np.float64),
                counts.astype(np.float64))
    rows, counts = np.unique(np.stack([x, t_x, T], axis=1), axis=0, return_counts=True)
    return rows[:, 0], rows[:, 1], rows[:, 2], counts.astype(np.float64)


def _gradient(params: BGNBD, x: Array, t_x: Array, T: Array) -> Array:
    """d log-likelihood / d log(parameter), one row per customer (r, α, a, b)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.full_like(x, -np.inf)
    a4[repeat] = (np.log(a) - np.log(b + x[repeat] - 1)
                  - (r + x[repeat]) * np.log(alpha + t_x[repeat]))
    w4 = expit(a4 - a3)  # the share of "left after the last purchase"
    w3 = 1.0 - w4
    safe = np.where(repeat, b + x - 1, 1.0)
    d_r = (digamma(r + x) - digamma(r) + np.log(alpha)
           - w3 * np.log(alpha + T) - w4 * np.log(alpha + t_x))
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + w4 / a
    d_b = (digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x)
           - np.where(repeat, w4 / safe, 0.0))
    return np.stack([r * d_r, alpha * d_alpha, a * d_a, b * d_b], axis=1)


def fit(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> BGNBDFit:
    """Maximum-likelihood parameters for customers (x, t_x, T).

    ValueError when the data can't be fitted (no customer, or inconsistent rows).
    """
    x_, tx_, T_ = _arrays(x, t_x, T)
    if x_.size == 0:
        raise ValueError("no customers to fit")
    if np.any(x_ < 0) or np.any(tx_ < 0) or np.any(tx_ > T_ + 1e-9) or np.any(
            (x_ == 0) & (tx_ != 0)):
        raise ValueError("each customer needs 0 <= t_x <= T, and t_x = 0 without repeats")
    gx, gtx, gT, weight = _grouped(x_, tx_, T_)
    total = float(weight.sum())

    def objective(theta: Array) -> tuple[float, Array]:
        params = BGNBD(*(float(v) for v in np.exp(theta)))
        with np.errstate(all="ignore"):
            value = -float(np.dot(weight, log_likelihood(params, gx, gtx, gT))) / total
            grad = -(weight @ _gradient(params, gx, gtx, gT)) / total
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return 1e300, np.zeros(4)
        return value, grad

    # Start where a typical shop ends up, scaled to the data's time unit.
    scale = max(float(np.mean(T_)), 1e-3)
    result = minimize(objective, np.log([1.0, scale, 1.0, 1.0]), jac=True,
                      method="L-BFGS-B", bounds=[(-20.0, 20.0)] * 4,
                      options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9})
    params = BGNBD(*(float(v) for v in np.exp(result.x)))
    ll = float(np.dot(weight, log_likelihood(params, gx, gtx, gT)))
    at_bound = bool(np.any(np.abs(result.x) >= 19.99))
    gradient_norm = float(np.max(np.abs(objective(result.x)[1])))
    converged = bool(np.isfinite(ll)) and not at_bound and gradient_norm < 1e-5
    message = ("converged" if converged else
               "a parameter ran to the edge of its range" if at_bound else
               f"the optimiser stopped early: {result.message}")
    return BGNBDFit(params, ll, int(total), converged, message)


def p_alive(params: BGNBD, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:
    """P(the customer is still active at T | x, t_x, T) (FHL 2005, equation 12).

    It is 1 for a customer without repeat purchases: in the model a customer can only
    leave right after a repeat purchase.
    """
    x_, tx_, T_ = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_odds = np.full_like(x_, -np.inf)
    repeat = x_ > 0
    xr = x_[repeat]
    log_odds[repeat] = (np.log(a) - np.log(b + xr - 1)
                        + (r + xr) * (np.log(alpha + T_[repeat]) - np.log(alpha + tx_[repeat])))
    return np.asarray(expit(-log_odds), dtype=np.float64)


def _a_minus_one(a: float) -> float:
    # The expectations divide by a - 1; at exactly 1 they are a limit, taken a hair away.
    return a - 1.0 if abs(a - 1.0) > 1e-9 else 1e-9


def expected_purchases(params: BGNBD, t: float, x: ArrayLike, t_x: ArrayLike,
                       T: ArrayLike) -> Array:
    """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005, equation 10).

    The Gauss hypergeometric term is evaluated after Euler's transformation,
    (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z),
    whose first two parameters do not grow with x (no overflow for frequent buyers).
    """
    x_, tx_, T_ = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    am1 = _a_minus_one(a)
    z = t / (alpha + T_ + t)
    hyp = np.power(1.0 - z, am1) * hyp2f1(a + b - 1.0 - r, am1, a + b + x_ - 1.0, z)
    head = (a + b + x_ - 1.0) / am1 * (1.0 - hyp)
    return np.asarray(head * p_alive(params, x_, tx_, T_), dtype=np.float64)


def expected_purchases_new(params: BGNBD, t: ArrayLike) -> Array:
    """E[purchases in (0, t]] of a customer just acquired (FHL 2005, equation 9)."""
    (t_,) = _arrays(t)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    am1 = _a_minus_one(a)
    hyp = np.power(alpha / (alpha + t_), r) * hyp2f1(r, b, a + b - 1.0, t_ / (alpha + t_))
    return np.asarray((a + b - 1.0) / am1 * (1.0 - hyp), dtype=np.float64)


def posterior_rate(params: BGNBD, x: ArrayLike, T: ArrayLike) -> Array:
    """E[λ | active, x, T]: the purchase rate of a customer who is still active.

    Given active, λ's posterior is Gamma(r + x, α + T).
    """
    x_, T_ = _arrays(x, T)
    return np.asarray((params.r + x_) / (params.alpha + T_), dtype=np.float64)


def simulate(params: BGNBD, T: ArrayLike,
             rng: np.random.Generator) -> tuple[Array, Array, Array]:
    """Draw (x, t_x, T) for customers observed for T time units each, from the model."""
    (T_,) = _arrays(T)
    n = T_.size
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    clock = np.zeros(n)
    going = np.ones(n, dtype=bool)
    while going.any():
        idx = np.flatnonzero(going)
        clock[idx] += rng.exponential(1.0, idx.size) / lam[idx]
        inside = clock[idx] <= T_[idx]
        bought = idx[inside]
        x[bought] += 1
        t_x[bought] = clock[bought]
        left = bought[rng.random(bought.size) < p[bought]]
        going[idx[~inside]] = False
        going[left] = False
    return x, t_x, T_.copy()
