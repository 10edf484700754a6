"""The peer graph (TOPOLOGY, EMPLOYER_PEERS): who hears whom.

The graph is scenario data, like the latencies: it is drawn from SEED, checked with the
other knobs before any process starts, and every process that needs it (the network's
router, each employee for its catch-up requests, the role assignment for
ADVERSARY_PLACEMENT) builds the same one from the scenario. The graph library
(networkx) is imported only when a scenario names a graph; the full mesh needs none.

Parties are the employees 0 .. EMPLOYEES_NUM - 1; the employer's light client is linked
to ``employer_peers``. The users are outside the graph: they hand every transaction to
every employee, as in the full mesh (transactions are not what a peer graph studies here).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulation.config.knobs import Scenario

TOPOLOGY_KINDS = ("full", "random:D", "bitcoin", "file:PATH")
EMPLOYER_IN_FILE = "employer"
PLACEMENTS = ("random", "employer")  # ADVERSARY_PLACEMENT
FORK_CHOICES = ("longest", "declarers")  # EMPLOYER_FORK_CHOICE
# Draws of a random graph before giving up on a connected one.
MAX_DRAWS = 100
# The cumulative distribution of a Bitcoin node's outbound links, 1 to 20 links, that
# SimBlock uses (its NetworkConfiguration.DEGREE_DISTRIBUTION_BITCOIN_2015), from A.
# Miller et al., "Discovering Bitcoin's public topology and influential nodes" (2015).
BITCOIN_OUTBOUND_CDF = (0.025, 0.050, 0.075, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70,
                        0.80, 0.85, 0.90, 0.95, 0.97, 0.97, 0.98, 0.99, 0.995, 1.0)


@dataclass(frozen=True)
class PeerGraph:
    """Each employee's peers (sorted indices) and the employer's; links are two-way."""

    name: str  # the TOPOLOGY text
    peers: tuple[tuple[int, ...], ...]  # by employee index
    employer_peers: tuple[int, ...]  # in the order drawn (ADVERSARY_PLACEMENT fills it)

    def peers_of(self, employee: int) -> tuple[int, ...]:
        return self.peers[employee]

    def degrees(self) -> list[int]:
        return [len(p) for p in self.peers]


def parse_topology(text: str, employees: int) -> tuple[str, int | str | None]:
    """("full", None), ("random", D), ("bitcoin", None) or ("file", PATH); ValueError
    with the reason otherwise."""
    text = text.strip()
    if text in ("full", "bitcoin"):
        return text, None
    kind, _, argument = text.partition(":")
    if kind == "random":
        if not re.fullmatch(r"-?\d+", argument):
            raise ValueError(f"random:D needs a whole number of peers D, got {text!r}")
        degree = int(argument)
        if not 1 <= degree < employees:
            raise ValueError(f"random:{degree}: D must lie in 1 .. EMPLOYEES_NUM - 1 "
                             f"({employees - 1})")
        return "random", degree
    if kind == "file" and argument:
        return "file", argument
    raise ValueError(f"unknown topology {text!r} (known: {', '.join(TOPOLOGY_KINDS)})")


def peer_graph_of(scenario: Scenario) -> PeerGraph | None:
    """The scenario's graph (None: the full mesh); ValueError with the reason when it
    cannot be built (a bad file, no connected draw, too many employer peers)."""
    n = scenario.employees_num
    kind, argument = parse_topology(scenario.topology, n)
    if kind == "full":
        return None
    import networkx as nx

    employer: list[int] | None = None
    if kind == "random":
        assert isinstance(argument, int)
        graph = _connected(lambda rng: _random_regular(nx, n, argument, rng), scenario.seed)
    elif kind == "bitcoin":
        graph = _connected(lambda rng: _bitcoin(nx, n, rng), scenario.seed)
    else:
        assert isinstance(argument, str)
        graph, employer = _from_file(nx, argument, n)
        if not nx.is_connected(graph):
            raise ValueError(f"the graph in {argument} is not connected")
        if employer and scenario.employer_peers:
            raise ValueError(f"{argument} names the employer's links, and EMPLOYER_PEERS "
                             f"({scenario.employer_peers}) would draw others: set one")
    if not employer:
        employer = _employer_peers(scenario)
    return PeerGraph(scenario.topology, tuple(tuple(sorted(graph.neighbors(i)))
                                              for i in range(n)), tuple(employer))


def _employer_peers(scenario: Scenario) -> list[int]:
    n, k = scenario.employees_num, scenario.employer_peers
    if not 0 <= k <= n:
        raise ValueError(f"EMPLOYER_PEERS must lie in 0 .. EMPLOYEES_NUM ({n}), got {k}")
    if k == 0:
        return list(range(n))
    return random.Random(f"PoT-employer-peers-{scenario.seed}").sample(range(n), k)


def _connected(draw, seed: int):
    """The first connected graph of ``draw`` over a seeded sequence of generators."""
    import networkx as nx

    for attempt in range(MAX_DRAWS):
        graph = draw(random.Random(f"PoT-topology-{seed}-{attempt}"))
        if graph is not None and nx.is_connected(graph):
            return graph
    raise ValueError(f"no connected graph in {MAX_DRAWS} draws: give more peers")


def _random_regular(nx, n: int, degree: int, rng: random.Random):
    """D peers each; when n * D is odd (no such graph exists) one employee gets D + 1."""
    seed = rng.getrandbits(32)
    if n * degree % 2 == 0:
        return nx.random_regular_graph(degree, n, seed=seed)
    try:
        return nx.random_degree_sequence_graph([degree] * (n - 1) + [degree + 1],
                                               seed=seed, tries=20)
    except nx.NetworkXError:
        return None  # no graph this draw: the next one


def _bitcoin(nx, n: int, rng: random.Random):
    """SimBlock's construction: each employee in turn draws its number of outbound
    links from BITCOIN_OUTBOUND_CDF and links to that many others drawn at random (not
    itself, not one it is already linked to); links are two-way."""
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for node in range(n):
        u = rng.random()
        outbound = next(d for d, p in enumerate(BITCOIN_OUTBOUND_CDF, start=1) if u <= p)
        candidates = [m for m in range(n) if m != node and not graph.has_edge(node, m)]
        for peer in rng.sample(candidates, min(outbound, len(candidates))):
            graph.add_edge(node, peer)
    return graph


def _from_file(nx, path: str, n: int):
    """An edge list: one pair of party names per line ("E0 E3"; "employer E5"), blank
    lines and "#" comments ignored."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    employer: list[int] = []
    for number, line in enumerate(lines, start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise ValueError(f"{path} line {number}: a link is two party names, got "
                             f"{line.strip()!r}")
        a, b = (_party(word, n, path, number) for word in words)
        if a == b:
            raise ValueError(f"{path} line {number}: a party cannot link to itself")
        if None in (a, b):
            peer = b if a is None else a
            if peer is None:
                raise ValueError(f"{path} line {number}: the employer links to employees")
            if peer not in employer:
                employer.append(peer)
        else:
            graph.add_edge(a, b)
    return graph, employer


def _party(word: str, n: int, path: str, number: int) -> int | None:
    """An employee's index, or None for the employer."""
    if word == EMPLOYER_IN_FILE:
        return None
    match = re.fullmatch(r"E(\d+)", word)
    if match is None or int(match.group(1)) >= n:
        raise ValueError(f"{path} line {number}: unknown party {word!r} (the parties are "
                         f"E0 .. E{n - 1} and {EMPLOYER_IN_FILE})")
    return int(match.group(1))
