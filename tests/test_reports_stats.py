"""reports/stats.py: the two-proportion test, checked by hand and against scipy.

scipy is the independent implementation (a test-only dependency): the pooled z-test's
two-sided p-value equals the χ² test of the 2×2 table without Yates' correction, and
the quantile equals scipy.stats.norm.ppf.
"""

from __future__ import annotations

import math
import random

import pytest
from scipy.stats import chi2_contingency, norm

from kanal_collector.reports.stats import (
    Comparison,
    normal_cdf,
    normal_quantile,
    two_proportion,
)

Z975 = 1.959963984540054  # norm.ppf(0.975), from tables


def test_hand_computed_increase() -> None:
    # a 10/100, b 20/100. pooled p = 30/200 = 0.15;
    # se = sqrt(0.15 * 0.85 * (1/100 + 1/100)) = sqrt(0.00255) = 0.050497524...;
    # z = 0.1 / 0.050497524 = 1.980295086; p = erfc(z / sqrt 2) = 0.0476703807.
    # unpooled se = sqrt(0.1*0.9/100 + 0.2*0.8/100) = sqrt(0.0025) = 0.05;
    # CI = 0.1 ± 1.959963985 * 0.05 = [0.0020018008, 0.1979981992]; lift = 0.1/0.1 = 1.
    c = two_proportion(10, 100, 20, 100)
    assert c.rate_a == pytest.approx(0.1) and c.rate_b == pytest.approx(0.2)
    assert c.difference == pytest.approx(0.1)
    assert c.lift == pytest.approx(1.0)
    assert c.z == pytest.approx(1.980295086, abs=1e-9)
    assert c.p_value == pytest.approx(0.0476703807, abs=1e-10)
    assert c.ci_low == pytest.approx(0.1 - Z975 * 0.05, abs=1e-12)
    assert c.ci_high == pytest.approx(0.1 + Z975 * 0.05, abs=1e-12)
    assert c.ci_low == pytest.approx(0.0020018008, abs=1e-10)
    assert c.significant and c.warning is None and c.confidence == 0.95


def test_hand_computed_decrease() -> None:
    # a 50/200 = 0.25, b 30/200 = 0.15. pooled p = 80/400 = 0.2;
    # se = sqrt(0.2 * 0.8 * (2/200)) = sqrt(0.0016) = 0.04 exactly; z = -0.1/0.04 = -2.5;
    # p = erfc(2.5 / sqrt 2) = 0.0124193307; lift = -0.1 / 0.25 = -0.4.
    # unpooled se = sqrt((0.25*0.75 + 0.15*0.85)/200) = sqrt(0.001575) = 0.0396862697.
    c = two_proportion(50, 200, 30, 200)
    assert c.z == pytest.approx(-2.5, abs=1e-12)
    assert c.p_value == pytest.approx(0.0124193307, abs=1e-10)
    assert c.lift == pytest.approx(-0.4)
    half = Z975 * 0.0396862697
    assert (c.ci_low, c.ci_high) == pytest.approx((-0.1 - half, -0.1 + half), abs=1e-9)
    assert c.significant
    # At 99% the same data is not significant (p 0.0124 > 0.01) and the interval widens.
    strict = two_proportion(50, 200, 30, 200, confidence=0.99)
    assert strict.p_value == c.p_value and not strict.significant
    assert strict.ci_low is not None and c.ci_low is not None and strict.ci_low < c.ci_low


def test_no_difference() -> None:
    # 30/100 both: z = 0, p = 1; CI = 0 ± 1.96 * sqrt(2 * 0.3 * 0.7 / 100) = ± 0.1270198.
    c = two_proportion(30, 100, 30, 100)
    assert c.z == 0.0 and c.p_value == pytest.approx(1.0) and c.lift == 0.0
    assert c.ci_high == pytest.approx(Z975 * math.sqrt(0.0042), abs=1e-12)
    assert c.ci_low == pytest.approx(-c.ci_high)
    assert not c.significant


@pytest.mark.parametrize(("p", "x"), [
    (0.5, 0.0), (0.975, 1.959963984540054), (0.025, -1.959963984540054),
    (0.95, 1.6448536269514722), (0.995, 2.5758293035489004),
    (0.8413447460685429, 1.0), (1e-10, -6.361340902404056),
])
def test_quantile_known_values(p: float, x: float) -> None:
    assert normal_quantile(p) == pytest.approx(x, abs=1e-9)
    assert normal_cdf(x) == pytest.approx(p, rel=1e-9)


def test_quantile_matches_scipy() -> None:
    rng = random.Random(9)
    points = [1e-15, 1e-12, 1e-6, 0.02425, 0.024250001, 0.5, 0.97575, 0.999999, 1 - 1e-12]
    for _ in range(3000):
        # spread over the body and both tails (Acklam's regions meet at 0.02425)
        p = rng.random() ** rng.choice([1, 2, 5, 20, 60])
        points.append(p if rng.random() < 0.5 else 1 - p)
    points = [p for p in points if 0 < p < 1]
    expected = norm.ppf(points)  # one vectorised call: scipy is slow per scalar
    for p, x in zip(points, expected, strict=True):
        assert normal_quantile(p) == pytest.approx(float(x), abs=1e-9), p


def _scipy_p(a: int, na: int, b: int, nb: int) -> float:
    return float(chi2_contingency([[a, na - a], [b, nb - b]], correction=False).pvalue)


def test_random_cases_match_scipy() -> None:
    rng = random.Random(2024)
    checked = 0
    for _ in range(700):
        na, nb = rng.randint(1, 5000), rng.randint(1, 5000)
        ra, rb = rng.random(), rng.random() * rng.choice([0.5, 1.0, 1.5])
        a = rng.randint(0, na) if rng.random() < 0.2 else min(na, round(na * ra))
        b = rng.randint(0, nb) if rng.random() < 0.2 else min(nb, round(nb * min(rb, 1.0)))
        confidence = rng.choice([0.8, 0.9, 0.95, 0.99, rng.uniform(0.5, 0.999)])
        c = two_proportion(a, na, b, nb, confidence=confidence)
        assert c.p_value is not None and c.ci_low is not None and c.ci_high is not None
        if a + b in (0, na + nb):
            assert c.p_value == 1.0  # scipy refuses a table with an empty column
            continue
        assert c.p_value == pytest.approx(_scipy_p(a, na, b, nb), abs=1e-9)
        pa, pb = a / na, b / nb
        se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
        q = float(norm.ppf(1 - (1 - confidence) / 2))
        assert c.ci_low == pytest.approx(pb - pa - q * se, abs=1e-9)
        assert c.ci_high == pytest.approx(pb - pa + q * se, abs=1e-9)
        assert c.significant == (c.p_value < 1 - confidence)
        assert c.lift == (None if a == 0 else pytest.approx((pb - pa) / pa))
        checked += 1
    assert checked > 550


@pytest.mark.parametrize(("args", "p_value", "lift"), [
    ((0, 50, 0, 50), 1.0, None),      # both 0%: nothing to test, no lift from 0
    ((50, 50, 50, 50), 1.0, 0.0),     # both 100%
    ((0, 100, 10, 100), "scipy", None),  # a control at 0%: a p-value, but no lift
    ((100, 100, 90, 100), "scipy", -0.1),
])
def test_edge_rates(args: tuple[int, int, int, int], p_value: object,
                    lift: float | None) -> None:
    c = two_proportion(*args)
    expected = _scipy_p(*args) if p_value == "scipy" else p_value
    assert c.p_value == pytest.approx(expected, abs=1e-12)
    assert c.lift == (None if lift is None else pytest.approx(lift))
    assert c.ci_low is not None and c.ci_high is not None and c.ci_low <= c.ci_high


@pytest.mark.parametrize("args", [(0, 0, 5, 40), (5, 40, 0, 0), (0, 0, 0, 0)])
def test_an_arm_without_runs_has_no_test(args: tuple[int, int, int, int]) -> None:
    c = two_proportion(*args)
    assert isinstance(c, Comparison)
    assert (c.z, c.p_value, c.ci_low, c.ci_high) == (None, None, None, None)
    assert not c.significant
    assert c.warning is not None and c.warning.startswith("too few")
    assert "has 0 runs" in c.warning


@pytest.mark.parametrize(("args", "warned", "phrase"), [
    ((10, 30, 12, 30), False, None),
    ((10, 29, 12, 30), True, "a has 29 runs"),
    ((4, 100, 50, 100), True, "a has 4 conversions"),
    ((50, 100, 96, 100), True, "b has 4 non-conversions"),
    ((5, 100, 95, 100), False, None),
])
def test_small_sample_warning(args: tuple[int, int, int, int], warned: bool,
                              phrase: str | None) -> None:
    c = two_proportion(*args)
    assert (c.warning is not None) == warned
    if phrase is not None:
        assert c.warning is not None and phrase in c.warning


@pytest.mark.parametrize(("args", "kwargs", "name"), [
    ((11, 10, 1, 10), {}, "conv_a"),
    ((1, 10, 11, 10), {}, "conv_b"),
    ((-1, 10, 1, 10), {}, "conv_a"),
    ((1, -10, 1, 10), {}, "n_a"),
    ((1.5, 10, 1, 10), {}, "conv_a"),
    ((1, 10, True, 10), {}, "conv_b"),
    ((1, 10, 1, 10), {"confidence": 1.0}, "confidence"),
    ((1, 10, 1, 10), {"confidence": 0}, "confidence"),
    ((1, 10, 1, 10), {"confidence": 95}, "confidence"),
])
def test_bad_arguments_are_named(args: tuple[object, ...], kwargs: dict[str, object],
                                 name: str) -> None:
    with pytest.raises(ValueError, match=name):
        two_proportion(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 2.0, float("nan"), True])
def test_quantile_outside_0_1(p: float) -> None:
    with pytest.raises(ValueError, match="p must be"):
        normal_quantile(p)
