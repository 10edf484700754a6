"""The statistics of the studies: Wilson intervals of rates, Student-t intervals of means,
what a point of a sweep reports of a measure (``describe``) and of a proportion
(``proportion``), and reading a cell of a run's row as a number or a flag. Pure
functions, tested against scipy (tests/test_statistics.py); the sweep command decides
which runs' values enter them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

Z95 = 1.959963985  # the standard normal's 97.5% quantile

def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of k successes in n trials; None for n = 0. Unlike the
    normal approximation it stays inside [0, 1] and is not empty at k = 0 or k = n,
    which are the common cases here (the employer was never / always poisoned)."""
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"k={k} is outside 0..{n}")
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At k = 0 and k = n the bound is exactly p; floating point can miss it by 1e-17,
    # which would leave the rate just outside its own interval.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def t_interval(values: Sequence[float], confidence: float = 0.95,
               bounds: tuple[float, float] = (-math.inf, math.inf)
               ) -> tuple[float, float] | None:
    """Student-t interval of the mean; None below two values (no spread to estimate).
    ``bounds``: what the measured quantity can take (a count at least 0, a share at
    most 1); the interval is clipped to them, since the symmetric t interval of skewed
    values near a bound reaches past it (0, 0, 0, 3: from -1.64 to 3.14)."""
    n = len(values)
    if n < 2:
        return None
    from scipy import stats  # imported here: scipy is slow to import and only used now

    mean = statistics.fmean(values)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * statistics.stdev(values)
    half /= math.sqrt(n)
    low, high = bounds
    return max(float(low), mean - half), min(float(high), mean + half)


def describe(values: Sequence[float], bounds: tuple[float, float] = (-math.inf, math.inf)
             ) -> dict[str, float | None]:
    """Mean, standard deviation and 95% t interval of a measure's values (clipped to
    ``bounds``); None where there are too few values for the statistic."""
    interval = t_interval(values, bounds=bounds)
    return {"mean": statistics.fmean(values) if values else None,
            "sd": statistics.stdev(values) if len(values) > 1 else None,
            "ci95_low": interval[0] if interval else None,
            "ci95_high": interval[1] if interval else None}


def proportion(flags: Sequence[bool]) -> dict[str, float | None]:
    """The rate of True among ``flags`` and its 95% Wilson interval; None without any."""
    k, n = sum(flags), len(flags)
    interval = wilson_interval(k, n)
    return {"rate": k / n if n else None,
            "ci95_low": interval[0] if interval else None,
            "ci95_high": interval[1] if interval else None}


def number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def flag(value: Any) -> bool | None:
    """A boolean cell, typed (row files) or as CSV text; None when blank."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower() if value is not None else ""
    return {"true": True, "1": True, "false": False, "0": False}.get(text)
