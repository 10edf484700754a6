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

from simulation.config import Scenario

_NORMAL = statistics.NormalDist()

# LATENCY="regions": the six regions of SimBlock (Aoki et al., "SimBlock: A Blockchain
# Network Simulator", 2019; github.com/dsg-titech/simblock, NetworkConfiguration.java):
# the 2019 shares of Bitcoin nodes per region and the 2019 mean latency table in ms.
REGIONS = ("north_america", "europe", "south_america", "asia_pacific", "japan",
           "australia")
REGION_SHARES = (0.3316, 0.4998, 0.0090, 0.1177, 0.0224, 0.0195)
REGION_LATENCY_MS = (
    (32, 124, 184, 198, 151, 189),
    (124, 11, 227, 237, 252, 294),
    (184, 227, 88, 325, 301, 322),
    (198, 237, 325, 85, 58, 198),
    (151, 252, 301, 58, 12, 126),
    (189, 294, 322, 198, 126, 16),
)
# SimBlock draws each delay from a Pareto distribution with the table's mean and shape 5
# (about 20% spread); so does this model.
PARETO_SHAPE = 5.0


class Latency:
    def __init__(self, kind: str, values: tuple[float, ...], seed: int,
                 tick_milliseconds: int = 100):
        self.kind = kind
        self.values = values
        self.tick_milliseconds = tick_milliseconds
        self._seed = seed.to_bytes(8, "big", signed=False)
        self._regions: dict[int, int] = {}

    @classmethod
    def of(cls, scenario: Scenario) -> Latency | None:
        """None when every message takes NETWORK_DELAY_TICKS (no model chosen)."""
        parsed = scenario.latency_model
        return None if parsed is None else cls(*parsed, scenario.seed,
                                               scenario.tick_milliseconds)

    def region(self, party: int) -> int:
        """The region (index into REGIONS) of a party: a draw from REGION_SHARES by a
        hash of SEED and the party's index (employees 0.., users n, employer -1)."""
        if party not in self._regions:
            u = self._uniform(party, party, 2**63)  # a message number no party reaches
            total, region = 0.0, len(REGION_SHARES) - 1
            for i, share in enumerate(REGION_SHARES):
                total += share
                if u < total:
                    region = i
                    break
            self._regions[party] = region
        return self._regions[party]

    def _uniform(self, sender: int, receiver: int, sequence: int) -> float:
        digest = hashlib.sha256(b"PoT-latency" + self._seed + sender.to_bytes(8, "big", signed=True)
                                + receiver.to_bytes(8, "big", signed=True)
                                + sequence.to_bytes(8, "big")).digest()
        return (int.from_bytes(digest[:8], "big") + 0.5) / 2**64  # strictly inside (0, 1)

    def min_delay(self, parties: list[int]) -> int:
        """A lower bound of ``delay`` between any two of ``parties``: a Pareto draw is at
        least its scale, a lognormal one only at least 1."""
        if self.kind in ("constant", "uniform"):
            return int(self.values[0])
        if self.kind == "regions":
            used = {self.region(p) for p in parties}
            fastest = min(REGION_LATENCY_MS[a][b] for a in used for b in used)
            scale = fastest * (PARETO_SHAPE - 1) / PARETO_SHAPE
            return max(1, round(scale / self.tick_milliseconds))
        median, sigma = self.values
        return max(1, round(median)) if sigma == 0 else 1

    def delay(self, sender: int, receiver: int, sequence: int) -> int:
        """Ticks (at least 1) for the sender's message number ``sequence`` to reach
        ``receiver``."""
        if self.kind == "constant":
            return int(self.values[0])
        u = self._uniform(sender, receiver, sequence)
        if self.kind == "uniform":
            low, high = int(self.values[0]), int(self.values[1])
            return low + min(high - low, int(u * (high - low + 1)))
        if self.kind == "regions":
            mean_ms = REGION_LATENCY_MS[self.region(sender)][self.region(receiver)]
            scale = mean_ms * (PARETO_SHAPE - 1) / PARETO_SHAPE
            return max(1, round(float(scale / u ** (1 / PARETO_SHAPE) / self.tick_milliseconds)))
        median, sigma = self.values
        return max(1, round(median * math.exp(sigma * _NORMAL.inv_cdf(u))))
