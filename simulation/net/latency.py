"""Per-message latency (the LATENCY knob): how many ticks a message takes from one party
to another.

Every draw is a function of SEED, sender, receiver and the sender's message number
(SHA-256, read as a number in (0, 1)), never of a shared random generator: both backends,
and any order of computing the draws, give the same delays.
"""

from __future__ import annotations

import hashlib
import math
import statistics

from simulation.config import Scenario, parse_latency

_NORMAL = statistics.NormalDist()


class Latency:
    def __init__(self, kind: str, values: tuple[float, ...], seed: int):
        self.kind = kind
        self.values = values
        self._seed = seed.to_bytes(8, "big", signed=False)

    @classmethod
    def of(cls, scenario: Scenario) -> Latency | None:
        """None when every message takes NETWORK_DELAY_TICKS (no model chosen)."""
        parsed = parse_latency(scenario.latency)
        return None if parsed is None else cls(*parsed, scenario.seed)

    def _uniform(self, sender: int, receiver: int, sequence: int) -> float:
        digest = hashlib.sha256(b"PoT-latency" + self._seed + sender.to_bytes(8, "big", signed=True)
                                + receiver.to_bytes(8, "big", signed=True)
                                + sequence.to_bytes(8, "big")).digest()
        return (int.from_bytes(digest[:8], "big") + 0.5) / 2**64  # strictly inside (0, 1)

    def delay(self, sender: int, receiver: int, sequence: int) -> int:
        """Ticks (at least 1) for the sender's message number ``sequence`` to reach
        ``receiver``."""
        if self.kind == "constant":
            return int(self.values[0])
        u = self._uniform(sender, receiver, sequence)
        if self.kind == "uniform":
            low, high = int(self.values[0]), int(self.values[1])
            return low + min(high - low, int(u * (high - low + 1)))
        median, sigma = self.values
        return max(1, round(median * math.exp(sigma * _NORMAL.inv_cdf(u))))
