"""Who earns the rewards: the ``fairness`` section of the summary (issue 9, item 3).

Compute share is an employee's training speed over the speeds of all employees (speed is
the inverse of its hardware profile's factor, HARDWARE; all 1 by default). Reward share
is its coinbase earnings along the reference chain over all earnings. The Gini
coefficient of the rewards is 0 when every employee earned the same and approaches 1
when one earned everything; the Nakamoto coefficient is the smallest number of employees
that trained more than half of the chain's blocks (the fewest who would have to collude
to control block production).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from simulation.protocol.names import employee_name
from simulation.protocol.records import ChainEntry


def gini(values: list[float]) -> float | None:
    """Mean absolute difference over twice the mean; None for no values or all zero."""
    n, total = len(values), sum(values)
    if n == 0 or total <= 0:
        return None
    ordered = sorted(values)
    # sum_i (2i - n - 1) x_i over sorted x, i from 1: the pairwise form without n^2 pairs.
    weighted = sum((2 * i - n - 1) * x for i, x in enumerate(ordered, start=1))
    return weighted / (n * total)


def nakamoto_coefficient(blocks_by_trainer: dict[str, int]) -> int | None:
    """Fewest trainers whose blocks are more than half of all; None without blocks."""
    total = sum(blocks_by_trainer.values())
    if total == 0:
        return None
    held = 0
    for count, n in enumerate(sorted(blocks_by_trainer.values(), reverse=True), start=1):
        held += n
        if 2 * held > total:
            return count
    return len(blocks_by_trainer)  # unreachable: the whole set holds all blocks


def fairness(rewards: dict[str, int], chain: Sequence[ChainEntry],
             speed_factors: dict[str, float]) -> dict[str, Any]:
    """``rewards``: coinbase earned per employee name; ``chain``: the reference chain's
    entries (``trainer`` is an employee index); ``speed_factors``: name -> the profile's
    factor (time per stage relative to the reference hardware)."""
    # Employees only: a key no employee holds (an "outsider", a Sybil's) earns rewards
    # that count in the totals, but it has no hardware.
    names = [n for n in rewards if n.startswith("E")]
    speeds = {n: 1 / speed_factors.get(n, 1.0) for n in names}
    total_speed = sum(speeds.values())
    total_rewards = sum(rewards.values())
    blocks: Counter[str] = Counter({n: 0 for n in names})
    for entry in chain[1:]:
        if entry.trainer is not None and entry.trainer >= 0:
            blocks[employee_name(entry.trainer)] += 1
    value = gini([float(rewards[n]) for n in names])
    total_blocks = sum(blocks.values())
    by_factor: dict[str, dict[str, Any]] = {}
    for factor in sorted({speed_factors.get(n, 1.0) for n in names}):
        group = [n for n in names if speed_factors.get(n, 1.0) == factor]
        by_factor[f"{factor:g}"] = {
            "employees": len(group),
            "compute_share": round(sum(speeds[n] for n in group) / total_speed, 5),
            "reward_share": round(sum(rewards[n] for n in group) / total_rewards, 5)
            if total_rewards else None,
            "blocks_share": round(sum(blocks[n] for n in group) / total_blocks, 5)
            if total_blocks else None}
    return {
        "gini_rewards": None if value is None else round(value, 5),
        "nakamoto_coefficient": nakamoto_coefficient(dict(blocks)),
        "by_speed_factor": by_factor,
        "employees": {
            n: {"speed_factor": speed_factors.get(n, 1.0),
                "compute_share": round(speeds[n] / total_speed, 5) if total_speed else None,
                "reward_share": round(rewards[n] / total_rewards, 5)
                if total_rewards else None,
                "blocks_trained": blocks[n]}
            for n in names},
    }
