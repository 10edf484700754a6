"""Issue 20: the peer graph (TOPOLOGY, EMPLOYER_PEERS, ADVERSARY_PLACEMENT), relay after
validation, the employer's exposure, and what the summary measures of them. Lockstep runs
with the hash trainer: no processes, no TensorFlow."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from simulation.config import default_scenario, problems
from simulation.config.topology import BITCOIN_OUTBOUND_CDF, peer_graph_of
from simulation.net.lockstep import network_result, run_lockstep
from simulation.net.relay import ANNOUNCEMENT_BYTES, Router
from simulation.node.adversaries import assign_adversaries
from simulation.node.genesis import genesis_of
from simulation.protocol.names import EMPLOYER_PARTY
from simulation.report.reporting import render, summarize
from simulation.report.self_check import self_check


def _scenario(**changes):
    return default_scenario().replace(trainer="hash", log_file="unused.log", **changes)


def _run(**changes):
    scenario = _scenario(**changes)
    assert problems(scenario) == [], problems(scenario)
    run = run_lockstep(scenario)
    result = network_result(run)
    summary = summarize(scenario, genesis_of(scenario), result,
                        assign_adversaries(scenario), 1.0)
    return run, result, summary


def _line(tmp_path, n: int, employer_at: int | None = None, extra: str = "") -> str:
    """E0 - E1 - ... - E(n-1), and the employer linked to one of them."""
    lines = [f"E{i} E{i + 1}" for i in range(n - 1)]
    if employer_at is not None:
        lines.append(f"employer E{employer_at}  # its only peer")
    path = tmp_path / "line.txt"
    path.write_text("# a line of employees\n\n" + "\n".join(lines) + "\n" + extra)
    return f"file:{path}"


# --- Refusals before the run ---------------------------------------------------------------

def _graph_file(tmp_path, text: str) -> str:
    path = tmp_path / "graph.txt"
    path.write_text(text)
    return f"file:{path}"


@pytest.mark.parametrize("changes, reason", [
    (dict(topology="random:0"), "random:0: D must lie in 1 .. EMPLOYEES_NUM - 1 (10)"),
    (dict(topology="random:11"), "random:11: D must lie in 1 .. EMPLOYEES_NUM - 1 (10)"),
    (dict(topology="random:x"), "random:D needs a whole number of peers D"),
    (dict(topology="ring"), "unknown topology 'ring' (known: full, random:D, bitcoin, "
                            "file:PATH)"),
    (dict(topology="random:1"), "no connected graph in 100 draws"),
    (dict(topology="file:/nowhere/graph.txt"), "cannot read /nowhere/graph.txt"),
    (dict(topology="random:4", employer_peers=12),
     "EMPLOYER_PEERS must lie in 0 .. EMPLOYEES_NUM (11), got 12"),
    (dict(topology="random:4", employer_peers=-1), "EMPLOYER_PEERS must lie in 0 .."),
    (dict(employer_peers=3), "EMPLOYER_PEERS needs a TOPOLOGY other than full"),
    (dict(topology="random:4", employer_peers=3, adversary_placement="employer"),
     "ADVERSARY_PLACEMENT employer (an eclipse) needs adversaries"),
    (dict(topology="random:4", adversary_placement="employer", adversaries="poisoned:2"),
     "ADVERSARY_PLACEMENT employer needs EMPLOYER_PEERS > 0"),
    (dict(employer_fork_choice="heaviest"),
     "EMPLOYER_FORK_CHOICE must be one of longest, declarers, got 'heaviest'"),
    (dict(topology="random:4", adversary_placement="near"),
     "ADVERSARY_PLACEMENT must be one of random, employer, got 'near'"),
])
def test_bad_topologies_are_refused_with_one_line_each(changes, reason):
    found = problems(_scenario(**changes))
    assert len(found) == 1 and reason in found[0], found


@pytest.mark.parametrize("text, reason", [
    ("E0 E1\nE1 E11\n", "line 2: unknown party 'E11' (the parties are E0 .. E10 and "
                        "employer)"),
    ("E0 E1\nE1 node7\n", "line 2: unknown party 'node7'"),
    ("E0 E1 E2\n", "line 1: a link is two party names"),
    ("E3 E3\n", "line 1: a party cannot link to itself"),
    ("".join(f"E{i} E{i + 1}\n" for i in range(9)), "is not connected"),  # E10 alone
    ("employer employer\n", "a party cannot link to itself"),
])
def test_a_bad_graph_file_is_refused_with_the_line_and_the_reason(tmp_path, text, reason):
    found = problems(_scenario(topology=_graph_file(tmp_path, text)))
    assert len(found) == 1 and found[0].startswith("TOPOLOGY: ") and reason in found[0], found


def test_a_file_naming_the_employer_and_employer_peers_both_is_refused(tmp_path):
    topology = _line(tmp_path, 11, employer_at=4)
    found = problems(_scenario(topology=topology, employer_peers=2))
    assert len(found) == 1 and "names the employer's links" in found[0], found


# --- The graphs ------------------------------------------------------------------------------

def test_random_d_gives_every_employee_d_peers_in_one_connected_graph_drawn_from_seed():
    graph = peer_graph_of(_scenario(employees_num=51, topology="random:8", seed=3))
    assert graph is not None and graph.degrees() == [8] * 51
    g = nx.Graph((i, p) for i, peers in enumerate(graph.peers) for p in peers)
    assert nx.is_connected(g) and all(i in graph.peers[p]
                                      for i, peers in enumerate(graph.peers) for p in peers)
    assert graph == peer_graph_of(_scenario(employees_num=51, topology="random:8", seed=3))
    assert graph.peers != peer_graph_of(_scenario(employees_num=51, topology="random:8",
                                                  seed=4)).peers
    assert graph.employer_peers == tuple(range(51))  # EMPLOYER_PEERS 0: every employee


def test_random_d_with_an_odd_number_of_ends_gives_one_employee_a_peer_more():
    graph = peer_graph_of(_scenario(employees_num=11, topology="random:3"))
    assert sorted(graph.degrees()) == [3] * 10 + [4]


def test_bitcoin_draws_outbound_links_from_the_published_distribution():
    assert len(BITCOIN_OUTBOUND_CDF) == 20 and BITCOIN_OUTBOUND_CDF[-1] == 1.0
    assert list(BITCOIN_OUTBOUND_CDF) == sorted(BITCOIN_OUTBOUND_CDF)
    graph = peer_graph_of(_scenario(employees_num=201, topology="bitcoin"))
    degrees = graph.degrees()
    g = nx.Graph((i, p) for i, peers in enumerate(graph.peers) for p in peers)
    assert nx.is_connected(g)
    # Outbound links average 8.645 (the distribution's mean). Each is a new two-way
    # link (a node links only to those it is not linked to yet), so a degree averages
    # twice the sample's outbound mean: within 1 of 8.645 is over 3 standard errors
    # (the distribution's deviation is about 4.3, over 201 draws).
    shares = [p - q for p, q in zip(BITCOIN_OUTBOUND_CDF, (0.0, *BITCOIN_OUTBOUND_CDF[:-1]),
                                    strict=True)]
    outbound_mean = sum(d * share for d, share in enumerate(shares, start=1))
    assert round(outbound_mean, 3) == 8.645
    assert abs(sum(degrees) / len(degrees) / 2 - outbound_mean) < 1.0
    assert min(degrees) >= 1


def test_a_graph_file_gives_its_links_and_the_employer_its_peers(tmp_path):
    graph = peer_graph_of(_scenario(topology=_line(tmp_path, 11, employer_at=4)))
    assert graph.peers[0] == (1,) and graph.peers[5] == (4, 6) and graph.peers[10] == (9,)
    assert graph.employer_peers == (4,)


def test_employer_peers_are_drawn_from_seed_and_an_eclipse_fills_them_with_adversaries():
    changes = dict(topology="random:4", employer_peers=3, adversaries="poisoned:2,lazy:2")
    graph = peer_graph_of(_scenario(**changes))
    assert len(set(graph.employer_peers)) == 3
    assert graph.employer_peers != peer_graph_of(_scenario(**changes, seed=9)).employer_peers
    random_roles = assign_adversaries(_scenario(**changes))
    assert random_roles == assign_adversaries(default_scenario().replace(
        adversaries="poisoned:2,lazy:2"))  # "random" is today's draw
    roles = assign_adversaries(_scenario(**changes, adversary_placement="employer"))
    first, second, third = graph.employer_peers
    assert roles[first] == roles[second] == "poisoned" and roles[third] == "lazy"
    assert sorted(roles.values()) == ["lazy", "lazy", "poisoned", "poisoned"]


# --- The full mesh stays as it was -----------------------------------------------------------

def test_the_full_mesh_builds_no_graph_and_relays_nothing():
    run, result, summary = _run()
    assert run.router.graph is None and not any(e.relays for e in run.employees)
    assert result.peer_graph is None
    network = summary["network"]
    assert network["topology"] == "full" and network["hops_p50"] is None
    assert network["duplicates"] == 0
    # Every copy counted: a broadcast to the 10 other employees and the employer.
    own = sum(sum(r["sent_bytes"].get(k, 0) for k in ("TD", "BH", "SS", "WB"))
              for name, r in result.reports.items() if name.startswith("E"))
    assert sum(v for k, v in result.uploaded_bytes.items() if k.startswith("E")) >= 11 * own
    assert "Peer graph" not in render(summary)


# --- Relay after validation ------------------------------------------------------------------

def test_on_a_line_a_block_takes_one_hop_per_link_and_nothing_is_duplicated(tmp_path):
    run, result, summary = _run(topology=_line(tmp_path, 11, employer_at=10))
    assert run.finished and self_check(summary) == []
    hops = result.peer_graph["block_hops"]
    assert hops
    for reached in hops.values():
        author = min(reached, key=reached.get)
        assert reached[author] == 0
        a = int(author[1:])
        for name, h in reached.items():
            if name.startswith("E"):
                assert h == abs(int(name[1:]) - a), (name, author)
    # A line has no second path: no copy is ever declined.
    assert summary["network"]["duplicates"] == 0
    assert summary["network"]["hops_p90"] >= 3
    assert result.peer_graph["employer_heard"].keys() == {"E10"}


def test_a_cycle_declines_the_second_copy_on_announcement(tmp_path):
    ring = _line(tmp_path, 11, extra="E10 E0\n")
    run, result, summary = _run(topology=ring)
    assert run.finished and self_check(summary) == []
    assert summary["network"]["duplicates"] > 0
    assert sum(result.peer_graph["duplicates_by_party"].values()) == \
        summary["network"]["duplicates"]
    # Only announcements cross for the declined copies: no employee was delivered a
    # round message twice (it would have been counted as received again).
    assert all(e.duplicates == 0 for e in run.employees)
    assert ANNOUNCEMENT_BYTES == 36


@pytest.mark.parametrize("stage_ticks", [0, 6])
def test_a_relay_forwards_a_declaration_once_it_has_trained_the_stage(stage_ticks):
    """Checking a declaration means training its stage: an employee that had not begun
    the stage when a peer's declaration arrived forwards it STAGE_TICKS later (at once
    without training time). Its own chain is unchanged meanwhile."""
    from helpers import make_employee

    from simulation.protocol.messages import TD, parse_message

    scenario = _scenario(topology="random:4", stage_ticks=stage_ticks, td_coinstake=2**255)
    author, relay = make_employee(scenario, 0), make_employee(scenario, 1)
    declaration = None
    for tick in range(40):
        sent = author.step(tick, []).outgoing
        declaration = next((d for d in sent if parse_message(d).kind == TD), None)
        if declaration is not None:
            break
    assert declaration is not None
    arrival = tick + 1
    forwarded = [t for t in range(arrival, arrival + 10)
                 if declaration in relay.step(t, [declaration] if t == arrival else []).outgoing]
    assert forwarded == [arrival + stage_ticks]
    assert relay.accepted[TD] == 1 and relay.relays


def test_honest_relays_keep_a_poisoned_majority_from_the_employer_behind_them(tmp_path):
    """6 of 11 poisoned: in the full mesh the employer takes the poisoned chain. When its
    only peer is an honest employee, poisoned blocks never reach it: honest relays check
    before they forward, and reject them."""
    _, _, mesh = _run(adversaries="poisoned:6")
    assert mesh["employer"]["poisoned_blocks"] > 0
    roles = assign_adversaries(_scenario(adversaries="poisoned:6"))
    honest = [i for i in range(11) if i not in roles]
    ring = _line(tmp_path, 11, employer_at=honest[0], extra="E10 E0\n")
    run, result, summary = _run(adversaries="poisoned:6", topology=ring)
    assert summary["employer"]["poisoned_blocks"] == 0
    assert result.peer_graph["employer_heard"].keys() == {f"E{honest[0]}"}
    poisoned = next(e for e in run.employees if e.role == "poisoned")
    assert poisoned.tree.tip.height > 0  # the coalition did build its branch


def test_an_eclipse_by_a_minority_starves_the_employer_of_the_honest_chain():
    """4 of 11 poisoned take all 3 of the employer's peer slots: the employer hears only
    the coalition, which forwards no honest block (it rejects them) and cannot build a
    chain of its own under the rules; the employer stays at genesis while the honest
    employees reach the target. Placed at random, the same coalition leaves the
    employer the honest chain."""
    changes = dict(adversaries="poisoned:4", topology="random:4", employer_peers=3)
    run, _, fair = _run(**changes)
    assert fair["employer"]["poisoned_blocks"] == 0 and fair["employer"]["chain_length"] > 1
    run, result, eclipsed = _run(**changes, adversary_placement="employer")
    assert run.finished and eclipsed["employer"]["chain_length"] == 1
    roles = assign_adversaries(_scenario(**changes, adversary_placement="employer"))
    heard = result.peer_graph["employer_heard"]
    assert heard and all(roles.get(int(name[1:])) == "poisoned" for name in heard)


def test_the_declarers_fork_choice_keeps_the_employer_off_a_fast_minority_branch():
    """The reviewer's attack: 4 of 11 poisoned grinders with the rules open outgrow the
    honest chain and the longest-chain employer takes their model. Weighing each block
    by the employees who declared for it, the same employer keeps the honest chain; a
    poisoned majority still wins (it has the declarers too)."""
    attack = dict(adversaries="poisoned-grinder:4", open_rules="all")
    _, _, longest = _run(**attack)
    assert longest["employer"]["poisoned_blocks"] > 10
    _, _, heaviest = _run(**attack, employer_fork_choice="declarers")
    assert heaviest["employer"]["poisoned_blocks"] == 0
    assert heaviest["employer"]["chain_length"] == heaviest["chain"]["length"]
    assert heaviest["chain"] == longest["chain"]  # the employees' own runs are unchanged
    _, _, majority = _run(adversaries="poisoned:6", employer_fork_choice="declarers",
                          max_ticks=400)
    assert majority["employer"]["poisoned_blocks"] > 0


def test_catch_up_requests_go_to_peers_and_an_employee_back_from_offline_catches_up():
    run, result, summary = _run(topology="random:3", churn="4@20:60", employees_num=8)
    assert run.finished and self_check(summary) == []
    assert summary["network"]["block_requests"] > 0
    assert result.peer_graph["links_dropped"] == 0  # every request went along a link


def test_windows_and_single_ticks_give_the_same_run_in_a_graph():
    changes = dict(topology="random:3", latency="uniform:2:4", stage_ticks=3,
                   adversaries="poisoned:2", employees_num=9)
    scenario = _scenario(**changes)
    windowed, single = run_lockstep(scenario), run_lockstep(scenario, max_window=1)
    assert windowed.ticks == single.ticks
    assert network_result(windowed) == network_result(single)


def test_the_router_sends_only_along_links():
    scenario = _scenario(employees_num=4, topology="random:2", employer_peers=1)
    router = Router.for_scenario(scenario)
    graph = scenario.peer_graph
    router.submit(0, 0, [b"own"], direct=[(p, b"direct") for p in (1, 2, 3, EMPLOYER_PARTY)])
    delivered = {e.receiver for e in router.take(1) if e.data == b"own"}
    assert delivered == set(router.links[0])
    assert set(graph.peers[0]) <= delivered
    linked = {p for p in (1, 2, 3, EMPLOYER_PARTY) if p in router.links[0]}
    assert router.dropped["no link"] == 4 - len(linked)
    # The users reach every employee, not the employer.
    router.submit(1, 4, [b"tx"])
    assert {e.receiver for e in router.take(2)} == {0, 1, 2, 3}


def test_the_summary_reports_the_graph_and_the_console_says_it(tmp_path):
    _, _, summary = _run(topology="random:4", employer_peers=2)
    network = summary["network"]
    assert network["topology"] == "random:4"
    assert network["hops_p50"] >= 1 and network["hops_p90"] >= network["hops_p50"]
    assert len(network["employer_peers"]) == 2
    assert set(network["employer_heard"]) <= set(network["employer_peers"])
    assert network["uploaded_bytes_max"] >= network["uploaded_bytes_per_employee"] > 0
    text = render(summary)
    assert "Peer graph random:4: a block reached half of the honest employees in" in text
    assert "Employer's peers: 2" in text


@pytest.mark.processes
def test_the_process_backend_gives_the_lockstep_run_in_a_graph(tmp_path):
    """One OS process per employee, the network process relaying along the graph: the
    same chain, ticks and graph figures as the in-process lockstep run."""
    from simulation.net import runner

    changes = dict(employees_num=6, seed=4, topology="random:3", employer_peers=2,
                   stage_ticks=2, latency="uniform:1:3", adversaries="poisoned:1")
    scenario = _scenario(**changes).replace(log_file=str(tmp_path / "r.log"))
    outcome = runner.run(scenario, quiet=True)
    _, _, lockstep = _run(**changes)
    assert outcome.exit_code == 0, outcome.summary.get("self_check")
    for key in ("chain", "ticks", "forks", "employer"):
        assert outcome.summary[key] == lockstep[key], key
    for key in ("topology", "hops_p50", "hops_p90", "duplicates", "uploaded_bytes_max",
                "employer_heard", "propagation_p90_ticks", "block_requests"):
        assert outcome.summary["network"][key] == lockstep["network"][key], key
    # BACKEND lockstep (every employee in this process, through the runner: log writer,
    # signals, results) gives the process backend's results but for the clocks and the
    # processes' exit codes.
    in_process = runner.run(scenario.replace(backend="lockstep",
                                             log_file=str(tmp_path / "l.log")), quiet=True)
    assert in_process.exit_code == 0
    timing = {"wall_seconds", "startup_seconds", "protocol_seconds", "exit_codes",
              "scenario", "rerun"}
    differ = {k for k in outcome.summary if k not in timing
              and outcome.summary[k] != in_process.summary.get(k)}
    assert differ == {"training"}, differ  # its clocks: the stages' wall time
    clocks = {"median_ms_per_sample", "median_first_stage_seconds"}
    assert {k: v for k, v in outcome.summary["training"].items() if k not in clocks} == \
        {k: v for k, v in in_process.summary["training"].items() if k not in clocks}
    logged = (tmp_path / "l.log").read_text()
    assert "accepted WB" in logged and "appended block" in logged


def test_the_lockstep_backend_refuses_real_training_before_start():
    found = problems(_scenario(backend="lockstep").replace(trainer="keras"))
    assert found == ["BACKEND lockstep steps every employee in one process and runs the hash "
                     "trainer only: set TRAINER hash (real training needs BACKEND process or "
                     "ray)"]
    assert problems(_scenario(backend="lockstep")) == []


def test_the_full_mesh_does_not_import_the_graph_library():
    """networkx takes a quarter of a second to import; the default run never needs it."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from simulation.config import default_scenario, validated\n"
            "from simulation.net.lockstep import run_lockstep\n"
            "s = validated(default_scenario().replace(trainer='hash'))\n"
            "run_lockstep(s)\n"
            "print('networkx' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_the_console_tells_the_graph_also_when_no_honest_block_was_made(tmp_path):
    """6 of 11 poisoned on a line split the honest employees, who then build no block;
    the summary still says what the graph carried and what the employer heard."""
    run, _, summary = _run(adversaries="poisoned:6", topology=_line(tmp_path, 11, 10),
                           max_ticks=300)
    assert not run.finished and summary["network"]["blocks_measured"] == 0
    text = render(summary)
    assert "Peer graph file:" in text and "Employer's peers: 1 (E10)" in text
