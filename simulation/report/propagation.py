"""How blocks spread: the ``network`` section of the summary.

From the honest employees' reports alone: each block-tree entry carries the tick the
block entered that employee's tree and the block's own tick (when its Roy wrapped it),
so the delay to each holder is their difference. A block's p50 (p90) is the delay by
which half (90%) of the live honest employees held it; the run's figure is the median
over the blocks that got that far. Stale blocks are those the honest employees know but
the reference chain does not hold (orphaned forks); a fork's depth is the length of the
longest stale branch hanging off one block. A block's time to finality is the ticks
until every honest employee holds the block EMPLOYER_CONFIDENCE above it.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from simulation.protocol.records import ChainEntry, EmployeeReport


def _reach(delays: list[int], share: float, employees: int) -> int | None:
    """Ticks until ``share`` of ``employees`` held the block; None if it never did."""
    need = max(1, math.ceil(share * employees))
    if len(delays) < need:
        return None
    return sorted(delays)[need - 1]


def _median(values: list[int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def _percentile(values: list[int], share: float) -> float | None:
    """The nearest-rank percentile (share 0.5 is the upper median)."""
    if not values:
        return None
    return float(sorted(values)[max(0, math.ceil(share * len(values)) - 1)])


def finality(chain: Sequence[ChainEntry], arrivals: dict[str, dict[bytes, int]],
             depth: int) -> list[int]:
    """Per block of the reference chain (genesis excluded) that has ``depth`` blocks on
    top of it: ticks from the block's own tick until every honest employee held the block
    ``depth`` above it (the light client's rule: a block is final under EMPLOYER_CONFIDENCE
    blocks). Blocks not yet buried that deep everywhere are left out."""
    out = []
    for height in range(1, len(chain) - depth):
        cover = chain[height + depth].hash
        ticks = [held[cover] for held in arrivals.values() if cover in held]
        if arrivals and len(ticks) == len(arrivals):
            out.append(max(ticks) - chain[height].tick)
    return out


def network_metrics(chain: Sequence[ChainEntry], employees: dict[str, EmployeeReport],
                    honest_names: list[str],
                    relayed_bytes: dict[str, int] | None = None,
                    confidence: int = 1) -> dict[str, Any]:
    """``chain``: the reference chain's entries (genesis first); ``employees``: the
    reports by name; ``relayed_bytes``: bytes the network relayed per sender, if known;
    ``confidence``: EMPLOYER_CONFIDENCE, the depth at which a block counts as final."""
    delays: dict[bytes, list[int]] = defaultdict(list)
    parent_of: dict[bytes, bytes] = {}
    arrivals: dict[str, dict[bytes, int]] = {name: {} for name in honest_names}
    for name in honest_names:
        for entry in employees[name].tree:
            if entry.arrived is None:
                continue
            delays[entry.hash].append(entry.arrived - entry.tick)
            parent_of[entry.hash] = entry.parent
            arrivals[name][entry.hash] = entry.arrived
    holders = len(honest_names)
    p50 = {b: _reach(d, 0.5, holders) for b, d in delays.items()}
    p90 = {b: _reach(d, 0.9, holders) for b, d in delays.items()}

    on_chain = {b.hash for b in chain}
    stale = {b for b in delays if b not in on_chain}
    deepest: dict[bytes, int] = {}  # fork point (a block on the chain) -> deepest branch
    for block in stale:
        root, depth = block, 1  # walk down to the first stale block of its branch
        while parent_of.get(root) in stale:
            root, depth = parent_of[root], depth + 1
        fork_point = parent_of.get(root, b"")
        deepest[fork_point] = max(deepest.get(fork_point, 0), depth)
    fork_depths = Counter(deepest.values())

    by_employee = {name: dict(sorted(employees[name].sent_bytes.items()))
                   for name in sorted(employees, key=lambda n: int(n[1:]))}
    final = finality(chain, arrivals, confidence)
    blocks_sent = sum(employees[n].sent.get("WB", 0) for n in employees)
    block_bytes = sum(employees[n].sent_bytes.get("WB", 0) for n in employees)
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
        "block_bytes_mean": round(block_bytes / blocks_sent, 1) if blocks_sent else None,
        "finality_depth": confidence,
        "finality_p50_ticks": _percentile(final, 0.5),
        "finality_p90_ticks": _percentile(final, 0.9),
        "blocks_final": len(final),
        # Catch-up (block requests): requests sent and blocks sent in answer.
        "block_requests": sum(employees[n].sent.get("RQ", 0) for n in employees),
        "blocks_served": sum(employees[n].served_blocks for n in employees),
        # Encoded bytes of the employees' own broadcasts, by kind; the network's count
        # per sender (adversaries' junk included) when the backend reports it.
        "bytes_sent": sum(sum(kinds.values()) for kinds in by_employee.values()),
        "bytes_sent_by_employee": by_employee,
        "bytes_relayed": dict(relayed_bytes) if relayed_bytes is not None else None,
    }


def peer_graph_metrics(peer_graph: dict[str, Any] | None,
                       uploaded: dict[str, int] | None,
                       honest: Sequence[str]) -> dict[str, Any]:
    """What the peer graph (TOPOLOGY) did: the hops a block took to reach half and 90%
    of the reporting honest employees (``_reach`` per block, the median over the blocks
    that got that far), the copies declined or delivered again, the bytes each employee
    uploaded (every copy and announcement), and what the employer heard from whom. The
    full mesh has no hops and no duplicates."""
    employees = {name: b for name, b in (uploaded or {}).items() if name.startswith("E")}
    volume = {"uploaded_bytes_per_employee": (round(sum(employees.values()) / len(employees),
                                                    1) if employees else None),
              "uploaded_bytes_max": max(employees.values(), default=None)}
    if peer_graph is None:
        return {"topology": "full", "hops_p50": None, "hops_p90": None,
                "blocks_hops_measured": 0, "duplicates": 0, **volume,
                "employer_peers": None, "employer_heard": None}
    p50, p90 = [], []
    for reached in (peer_graph.get("block_hops") or {}).values():
        hops = [reached[name] for name in honest if name in reached]
        p50.append(_reach(hops, 0.5, len(honest)))
        p90.append(_reach(hops, 0.9, len(honest)))
    return {"topology": peer_graph["topology"], "hops_p50": _median(p50),
            "hops_p90": _median(p90),
            "blocks_hops_measured": sum(1 for h in p50 if h is not None),
            "duplicates": peer_graph["duplicates"], **volume,
            "employer_peers": peer_graph["employer_peers"],
            "employer_heard": peer_graph["employer_heard"]}
