"""How blocks spread: the ``network`` section of the summary.

From the honest employees' reports alone: each block-tree entry carries the tick the
block entered that employee's tree and the block's own tick (when its Roy wrapped it),
so the delay to each holder is their difference. A block's p50 (p90) is the delay by
which half (90%) of the live honest employees held it; the run's figure is the median
over the blocks that got that far. Stale blocks are those the honest employees know but
the reference chain does not hold (orphaned forks); a fork's depth is the length of the
longest stale branch hanging off one block.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from typing import Any


def _reach(delays: list[int], share: float, employees: int) -> int | None:
    """Ticks until ``share`` of ``employees`` held the block; None if it never did."""
    need = max(1, math.ceil(share * employees))
    if len(delays) < need:
        return None
    return sorted(delays)[need - 1]


def _median(values: list[int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def network_metrics(chain: list[dict[str, Any]], employees: dict[str, Any],
                    honest_names: list[str],
                    relayed_bytes: dict[str, int] | None = None) -> dict[str, Any]:
    """``chain``: the reference chain's entries (genesis first); ``employees``: the
    reports by name; ``relayed_bytes``: bytes the network relayed per sender, if known."""
    delays: dict[bytes, list[int]] = defaultdict(list)
    parent_of: dict[bytes, bytes] = {}
    for name in honest_names:
        for entry in employees[name]["tree"]:
            if len(entry) < 7 or entry[5] is None:
                continue  # a report from before these fields existed
            block = bytes(entry[0])
            delays[block].append(entry[5] - entry[6])
            parent_of[block] = bytes(entry[1])
    holders = len(honest_names)
    p50 = {b: _reach(d, 0.5, holders) for b, d in delays.items()}
    p90 = {b: _reach(d, 0.9, holders) for b, d in delays.items()}

    on_chain = {bytes(b["hash"]) for b in chain}
    stale = {b for b in delays if b not in on_chain}
    deepest: dict[bytes, int] = {}  # fork point (a block on the chain) -> deepest branch
    for block in stale:
        root, depth = block, 1  # walk down to the first stale block of its branch
        while parent_of.get(root) in stale:
            root, depth = parent_of[root], depth + 1
        fork_point = parent_of.get(root, b"")
        deepest[fork_point] = max(deepest.get(fork_point, 0), depth)
    fork_depths = Counter(deepest.values())

    by_employee = {name: dict(sorted(employees[name].get("sent_bytes", {}).items()))
                   for name in sorted(employees, key=lambda n: int(n[1:]))}
    return {
        "propagation_p50_ticks": _median(list(p50.values())),
        "propagation_p90_ticks": _median(list(p90.values())),
        "propagation_p90_max_ticks": max((v for v in p90.values() if v is not None),
                                         default=None),
        "blocks_measured": len(delays),
        "blocks_below_p90": sum(1 for v in p90.values() if v is None),
        "stale_blocks": len(stale),
        "stale_rate": round(len(stale) / len(delays), 5) if delays else 0.0,
        "fork_depths": {str(d): n for d, n in sorted(fork_depths.items())},
        # Encoded bytes of the employees' own broadcasts, by kind; the network's count
        # per sender (adversaries' junk included) when the backend reports it.
        "bytes_sent": sum(sum(kinds.values()) for kinds in by_employee.values()),
        "bytes_sent_by_employee": by_employee,
        "bytes_relayed": dict(relayed_bytes) if relayed_bytes is not None else None,
    }
