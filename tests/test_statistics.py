"""The studies' statistics (simulation/experiments/statistics.py): Wilson intervals of
rates and Student-t intervals of means, by hand and against scipy, and how a row's cell
is read as a number or a flag."""

from __future__ import annotations

import math

import pytest

from simulation.experiments.statistics import flag, number, t_interval, wilson_interval


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(0, 20)
    assert (round(low, 4), round(high, 4)) == (0.0, 0.1611)
    low, high = wilson_interval(10, 20)
    assert (round(low, 4), round(high, 4)) == (0.2993, 0.7007)
    low, high = wilson_interval(20, 20)
    assert (round(low, 4), round(high, 4)) == (0.8389, 1.0)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match=r"k=3 is outside 0\.\.2"):
        wilson_interval(3, 2)


def test_wilson_interval_is_scipys_over_a_grid_of_counts() -> None:
    """Every k of every n up to 60 (most of them asymmetric around k/n), against
    scipy.stats.binomtest(...).proportion_ci(method="wilson")."""
    from scipy import stats

    for n in range(1, 61):
        for k in range(n + 1):
            theirs = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
            low, high = wilson_interval(k, n)
            assert low == pytest.approx(theirs.low, abs=1e-9), (k, n)
            assert high == pytest.approx(theirs.high, abs=1e-9), (k, n)


@pytest.mark.parametrize("k, n, quoted", [
    (1, 20, (0.01, 0.24)), (14, 20, (0.48, 0.85)), (4, 20, (0.08, 0.42)),
    (17, 20, (0.64, 0.95)), (0, 1110, (0.0, 0.0034)), (19, 1000, (0.012, 0.029)),
    (2, 1000, (0.0005, 0.007)), (983, 1000, (0.973, 0.989)), (8, 10, (0.49, 0.94)),
    (6, 10, (0.31, 0.83)),
])
def test_the_wilson_intervals_the_readme_quotes(k, n, quoted) -> None:
    """Each bound as the README prints it (to its own number of decimals)."""
    for bound, printed in zip(wilson_interval(k, n), quoted, strict=True):
        places = len(f"{printed}".split(".")[1])
        assert round(bound, places) == pytest.approx(printed, abs=1e-12), (k, n)


def test_t_interval_is_scipys_for_small_and_skewed_samples() -> None:
    import random

    from scipy import stats

    rng = random.Random(7)
    samples = [[1.0, 2.0], [0.0, 0.0, 10.0], [68.0, 75.0, 62.0, 70.0, 59.0]]
    samples += [[rng.expovariate(0.01) for _ in range(n)] for n in (2, 3, 5, 8, 13, 20, 40)]
    for values in samples:
        mean = sum(values) / len(values)
        theirs = stats.t.interval(0.95, len(values) - 1, loc=mean,
                                  scale=stats.sem(values))
        assert t_interval(values) == pytest.approx(theirs, rel=1e-12, abs=1e-12)
        theirs90 = stats.t.interval(0.90, len(values) - 1, loc=mean, scale=stats.sem(values))
        assert t_interval(values, 0.90) == pytest.approx(theirs90, rel=1e-12, abs=1e-12)
    assert t_interval([5.0]) is None and t_interval([]) is None
    assert t_interval([3.0, 3.0, 3.0]) == (3.0, 3.0)


def test_wilson_interval_holds_its_rate_exactly_at_the_extremes() -> None:
    # Computed naively, 12 of 12 gives an upper bound of 0.9999999999999999 and 9 of 9
    # a lower bound of 3e-17 for 0 of 9: the rate fell outside its own interval.
    for n in range(1, 60):
        assert wilson_interval(n, n)[1] == 1.0 and wilson_interval(0, n)[0] == 0.0


def test_t_interval_by_hand() -> None:
    # 2, 4, 6: mean 4, sd 2, t(0.975, 2) = 4.302653; half = 4.302653 * 2 / sqrt(3).
    low, high = t_interval([2.0, 4.0, 6.0])
    assert low == pytest.approx(4 - 4.968275, abs=1e-5)
    assert high == pytest.approx(4 + 4.968275, abs=1e-5)
    assert t_interval([5.0]) is None and t_interval([]) is None
    assert t_interval([3.0, 3.0]) == (3.0, 3.0)


@pytest.mark.parametrize("cell, expected", [
    (3, 3.0), ("2.5", 2.5), (" 7 ", 7.0), (0, 0.0), ("1e-3", 0.001),
    (True, None), (False, None), (None, None), ("", None), ("n/a", None),
    (float("nan"), None), ("nan", None), ([1], None),
])
def test_a_cell_is_a_number_or_none(cell, expected) -> None:
    """Booleans are flags, not counts: a True must not be averaged as 1."""
    got = number(cell)
    assert got == expected and (got is None or isinstance(got, float))


def test_a_number_keeps_infinity() -> None:
    assert number("inf") == math.inf


@pytest.mark.parametrize("cell, expected", [
    (True, True), (False, False), (1, True), (0, False), ("True", True), (" false ", False),
    ("1", True), ("0", False), ("TRUE", True), (2, None), ("", None), (None, None),
    ("yes", None), (0.0, None),
])
def test_a_cell_is_a_flag_or_none(cell, expected) -> None:
    assert flag(cell) is expected


def test_t_interval_is_clipped_to_what_the_measure_can_take() -> None:
    """Counts 0, 0, 0, 3: the t interval reaches below zero, a count cannot; shares 1, 1,
    0.9: it reaches above one. Inside its bounds an interval is scipy's, unchanged."""
    from scipy import stats

    assert t_interval([0.0, 0.0, 0.0, 3.0])[0] < 0
    low, high = t_interval([0.0, 0.0, 0.0, 3.0], bounds=(0.0, math.inf))
    assert low == 0.0 and high == pytest.approx(0.75 + 3.182446305 * 1.5 / 2, rel=1e-9)
    low, high = t_interval([1.0, 1.0, 0.9], bounds=(0.0, 1.0))
    assert high == 1.0 and 0.0 < low < 0.9
    values = [2.0, 4.0, 6.0]
    theirs = stats.t.interval(0.95, 2, loc=4.0, scale=stats.sem(values))
    assert t_interval(values, bounds=(-100.0, 100.0)) == pytest.approx(theirs, rel=1e-12)
    assert t_interval([1, 2], bounds=(0, 1))[0] == 0.0  # bounds given as ints: floats out
    assert isinstance(t_interval([1, 2], bounds=(0, 1))[0], float)


def test_describe_and_proportion_against_scipy_and_their_edges():
    """What a sweep's point reports of a measure and of a proportion."""
    from scipy import stats

    from simulation.experiments.statistics import describe, proportion

    values = [0.0, 0.0, 0.0, 3.0]
    got = describe(values, bounds=(0.0, math.inf))
    half = stats.t.ppf(0.975, 3) * stats.tstd(values) / 2
    assert got["mean"] == 0.75 and got["sd"] == pytest.approx(stats.tstd(values))
    assert got["ci95_low"] == 0.0  # clipped: the t interval reaches -1.64
    assert got["ci95_high"] == pytest.approx(0.75 + half)
    assert describe([2.0]) == {"mean": 2.0, "sd": None, "ci95_low": None, "ci95_high": None}
    pair = describe([1.0, 3.0])  # the fewest values with a spread
    assert pair["sd"] == pytest.approx(2 ** 0.5)
    assert (pair["ci95_low"], pair["ci95_high"]) == pytest.approx(
        (2 - stats.t.ppf(0.975, 1), 2 + stats.t.ppf(0.975, 1)))
    assert describe([]) == {"mean": None, "sd": None, "ci95_low": None, "ci95_high": None}
    rate = proportion([True, False, False, False, True])
    low, high = stats.binomtest(2, 5).proportion_ci(method="wilson")
    assert rate["rate"] == 0.4
    assert (rate["ci95_low"], rate["ci95_high"]) == pytest.approx((low, high), abs=1e-6)
    assert proportion([]) == {"rate": None, "ci95_low": None, "ci95_high": None}
