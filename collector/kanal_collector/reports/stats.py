"""Statistics of split tests: two proportions compared (no scipy at run time).

`two_proportion` compares a control arm (a) with a variant (b):

    rate        conversions / runs of each arm
    difference  rate_b − rate_a;  lift = difference / rate_a (None when rate_a is 0)
    z, p_value  the pooled two-proportion z-test, two-sided (the same p-value as a χ² test
                of the 2×2 table without Yates' correction)
    ci_low/high the unpooled Wald interval of the difference at `confidence`
    warning     "too few …" when an arm has fewer than 30 runs, or fewer than 5
                conversions or non-conversions (the normal approximation is poor there)

Edge cases never raise: an arm without runs gives no z, p-value or interval (None);
when both arms convert at 0% or both at 100% the pooled variance is 0 and the observed
difference is exactly 0, so z is 0.0 and the p-value 1.0 (no evidence of a difference;
a χ² routine refuses such a table instead). The interval then has zero width — the
Wald interval's known weakness at the edges, and one more reason for the warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_RUNS = 30
"""An arm with fewer runs than this gets a warning."""
MIN_OUTCOMES = 5
"""An arm with fewer conversions (or non-conversions) than this gets a warning."""

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)

# Peter J. Acklam's rational approximation of the inverse normal CDF (relative error
# below 1.15e-9), refined below with one Halley step on math.erfc.
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
      3.754408661907416e+00)
_P_LOW = 0.02425


def normal_cdf(x: float) -> float:
    """P(Z ≤ x) of the standard normal distribution."""
    return 0.5 * math.erfc(-x / _SQRT2)


def two_sided_p(z: float) -> float:
    """P(|Z| ≥ |z|) of the standard normal distribution."""
    return math.erfc(abs(z) / _SQRT2)


def _acklam_lower(p: float) -> float:
    """Acklam's approximation of the quantile for 0 < p ≤ 0.5."""
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        return ((((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5])
                / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0))
    q = p - 0.5
    r = q * q
    return ((((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
            / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0))


def normal_quantile(p: float) -> float:
    """The x with P(Z ≤ x) = p (the inverse of `normal_cdf`), for 0 < p < 1."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 < p < 1.0:
        raise ValueError(f"p must be a probability strictly between 0 and 1, not {p!r}")
    # Work in the lower tail, where normal_cdf (erfc of a positive number) keeps its
    # relative precision, and mirror for the upper half.
    lower = min(p, 1.0 - p)
    x = _acklam_lower(lower)
    # One Halley step: e is the error of the approximation in probability, u its
    # derivative's reciprocal scaled; this takes the 1e-9 error to about 1e-15.
    e = normal_cdf(x) - lower
    u = e * _SQRT2PI * math.exp(x * x / 2.0)
    x = x - u / (1.0 + x * u / 2.0)
    return x if p <= 0.5 else -x


@dataclass(frozen=True)
class Comparison:
    """A variant (b) against a control (a): rates, lift, z-test and interval."""

    rate_a: float
    rate_b: float
    difference: float
    """rate_b − rate_a."""
    lift: float | None
    """(rate_b − rate_a) / rate_a; None when rate_a is 0."""
    z: float | None
    p_value: float | None
    """Two-sided, pooled; None when an arm has no runs."""
    ci_low: float | None
    ci_high: float | None
    """The unpooled Wald interval of the difference; None when an arm has no runs."""
    confidence: float
    warning: str | None
    """Why the normal approximation can't be trusted here, or None."""

    @property
    def significant(self) -> bool:
        """True when the p-value is below 1 − confidence."""
        return self.p_value is not None and self.p_value < 1.0 - self.confidence


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number ≥ 0, not {value!r}")
    return value


def sample_warning(conv_a: int, n_a: int, conv_b: int, n_b: int, *,
                   names: tuple[str, str] = ("a", "b")) -> str | None:
    """A "too few …" warning when an arm has < 30 runs or < 5 conversions or
    non-conversions; None when both arms are large enough."""
    problems = []
    for name, conv, n in ((names[0], conv_a, n_a), (names[1], conv_b, n_b)):
        if n < MIN_RUNS:
            problems.append(f"{name} has {n} run{'s' if n != 1 else ''}")
        elif conv < MIN_OUTCOMES:
            problems.append(f"{name} has {conv} conversion{'s' if conv != 1 else ''}")
        elif n - conv < MIN_OUTCOMES:
            problems.append(f"{name} has {n - conv} non-conversion"
                            f"{'s' if n - conv != 1 else ''}")
    if not problems:
        return None
    return (f"too few to trust: {'; '.join(problems)} (each arm needs at least "
            f"{MIN_RUNS} runs and {MIN_OUTCOMES} conversions and non-conversions)")


def two_proportion(conv_a: int, n_a: int, conv_b: int, n_b: int, *,
                   confidence: float = 0.95,
                   names: tuple[str, str] = ("a", "b")) -> Comparison:
    """Compare conversion rates: arm a (the control) against arm b (`names` name them
    in the warning).

    ValueError (naming the argument) for counts that are not whole numbers ≥ 0, more
    conversions than runs, or a confidence outside (0, 1).
    """
    for value, name in ((conv_a, "conv_a"), (n_a, "n_a"), (conv_b, "conv_b"), (n_b, "n_b")):
        _count(value, name)
    if conv_a > n_a:
        raise ValueError(f"conv_a ({conv_a}) must not exceed n_a ({n_a})")
    if conv_b > n_b:
        raise ValueError(f"conv_b ({conv_b}) must not exceed n_b ({n_b})")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) \
            or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95), not {confidence!r}")
    rate_a = conv_a / n_a if n_a else 0.0
    rate_b = conv_b / n_b if n_b else 0.0
    difference = rate_b - rate_a
    lift = difference / rate_a if rate_a > 0 else None
    warning = sample_warning(conv_a, n_a, conv_b, n_b, names=names)
    if n_a == 0 or n_b == 0:
        return Comparison(rate_a, rate_b, difference, lift, None, None, None, None,
                          float(confidence), warning)
    pooled = (conv_a + conv_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    if se_pooled == 0.0:
        # Both arms at 0% or both at 100%: no difference observed, nothing to test.
        z, p_value = 0.0, 1.0
    else:
        z = difference / se_pooled
        p_value = two_sided_p(z)
    se = math.sqrt(rate_a * (1.0 - rate_a) / n_a + rate_b * (1.0 - rate_b) / n_b)
    half = normal_quantile(0.5 + confidence / 2.0) * se
    return Comparison(rate_a, rate_b, difference, lift, z, p_value, difference - half,
                      difference + half, float(confidence), warning)
