"""The summary's ``network`` section: how fast blocks spread, stale blocks, fork depths
and bytes sent (report/propagation.py), by hand and on whole lockstep runs."""

from __future__ import annotations

import pytest

from simulation.config import default_scenario
from simulation.net.lockstep import network_result, run_lockstep
from simulation.node.adversaries import assign_adversaries
from simulation.node.genesis import genesis_of
from simulation.protocol.names import employee_name
from simulation.protocol.records import ChainEntry, EmployeeReport, TreeEntry
from simulation.report.propagation import network_metrics
from simulation.report.reporting import render, summarize


def _summary(**changes):
    scenario = default_scenario().replace(trainer="hash", **changes)
    run = run_lockstep(scenario)
    return summarize(scenario, genesis_of(scenario), network_result(run),
                     assign_adversaries(scenario), 1.0), run


def _entry(block: bytes, parent: bytes, arrived: int | None, tick: int) -> TreeEntry:
    # The height, the trainer and the secret do not matter here.
    return TreeEntry(block, parent, 1, 0, b"s", arrived, tick)


def _report(tree: list[TreeEntry], sent_bytes: dict[str, int] | None = None
            ) -> EmployeeReport:
    """An employee's report with this tree and nothing else."""
    return EmployeeReport(index=0, behaviour="honest", chain=(), tree=tuple(tree), forks=0,
                          equivocations=0, fork_evidence=0, orphans=0, served_blocks=0,
                          attack={}, sent={}, sent_bytes=sent_bytes or {}, accepted={},
                          rejected={}, mempool=(), rejected_transactions=(), balances=(),
                          secrets=(), model_hashes=())


def _chain(*hashes: bytes) -> list[ChainEntry]:
    return [ChainEntry(height, h, 0) for height, h in enumerate(hashes)]


def test_percentiles_by_hand():
    """Ten honest employees; block X wrapped at tick 10 reached them after 0, 1, 1, 2, 2,
    2, 3, 3 and 5 ticks, and one never got it: half of them (5) held it after 2 ticks, 90%
    (9) after 5. Block Y reached only 4 of them: no p50, no p90."""
    genesis, x, y = b"G", b"X", b"Y"
    delays = [0, 1, 1, 2, 2, 2, 3, 3, 5, None]
    employees = {}
    for i, delay in enumerate(delays):
        tree = [] if delay is None else [_entry(x, genesis, 10 + delay, 10)]
        if i < 4:
            tree.append(_entry(y, x, 20 + i, 20))
        employees[employee_name(i)] = _report(tree, {"TD": 100 + i})
    chain = _chain(genesis, x)
    net = network_metrics(chain, employees, list(employees))
    assert net["blocks_measured"] == 2 and net["blocks_below_p90"] == 1
    assert net["propagation_p50_ticks"] == 2.0 and net["propagation_p90_ticks"] == 5.0
    assert net["propagation_p90_max_ticks"] == 5
    assert net["stale_blocks"] == 1 and net["stale_rate"] == 0.5  # Y is not on the chain
    assert net["fork_depths"] == {"1": 1}
    assert net["bytes_sent"] == sum(100 + i for i in range(10))
    assert net["bytes_sent_by_employee"]["E9"] == {"TD": 109}
    assert net["bytes_relayed"] is None


def test_fork_depth_is_the_longest_stale_branch_per_fork_point():
    """Off chain block A hang a branch B1 <- B2 <- B3 and a sibling C1; off A's child D
    hangs E1: two fork points, depths 3 and 1."""
    g, a, d = b"G", b"A", b"D"
    tree = [_entry(a, g, 1, 1), _entry(d, a, 2, 2), _entry(b"B1", a, 3, 3),
            _entry(b"B2", b"B1", 4, 4), _entry(b"B3", b"B2", 5, 5), _entry(b"C1", a, 3, 3),
            _entry(b"E1", d, 4, 4)]
    net = network_metrics(_chain(g, a, d), {"E0": _report(tree)}, ["E0"])
    assert net["stale_blocks"] == 5 and net["fork_depths"] == {"1": 1, "3": 1}


@pytest.mark.parametrize("delay", [1, 3])
def test_blocks_take_the_network_delay_to_spread(delay):
    """Roy holds its block at once, every other employee after NETWORK_DELAY_TICKS."""
    summary, _ = _summary(network_delay_ticks=delay, seed=1)
    net = summary["network"]
    assert net["propagation_p50_ticks"] == delay and net["propagation_p90_ticks"] == delay
    assert net["blocks_measured"] == summary["blocks_known"]
    assert net["blocks_below_p90"] == 0
    assert f"90% after {delay} tick(s)" in render(summary)


def test_stale_blocks_are_the_forks_lost_and_bytes_add_up():
    """Seed 6 of the default hash scenario forks once: one block is orphaned. The bytes
    the employees count for their broadcasts are what the network relayed for them."""
    summary, run = _summary(seed=6)
    net = summary["network"]
    assert summary["forks"] == 1
    assert net["stale_blocks"] == 1 and net["fork_depths"] == {"1": 1}
    assert net["stale_rate"] == round(1 / summary["blocks_known"], 5)
    relayed = net["bytes_relayed"]
    employees_relayed = sum(n for name, n in relayed.items() if name != "users")
    assert net["bytes_sent"] == employees_relayed > 0
    assert relayed["users"] > 0  # the users' transfers travel too
    per_kind = {}
    for kinds in net["bytes_sent_by_employee"].values():
        for kind, n in kinds.items():
            per_kind[kind] = per_kind.get(kind, 0) + n
    assert set(per_kind) <= {"TD", "BH", "SS", "WB"} and per_kind["WB"] > per_kind["SS"]
    assert sum(e.sent_bytes["WB"] for e in run.employees) == per_kind["WB"]
