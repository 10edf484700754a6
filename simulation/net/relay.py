"""The network's pure logic: which bytes reach whom at which tick, and when a run ends.

The network process (``network``) and the in-process driver (``lockstep``) share it, so
the tests of the protocol exercise the same delivery order as a real run.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from simulation.config import (
    EXACT,
    POISONED_TRAINING,
    Role,
    Scenario,
    computation_of,
    training_of,
)
from simulation.config.topology import PeerGraph
from simulation.net.conditions import Conditions
from simulation.net.latency import REGIONS, Latency
from simulation.protocol.names import EMPLOYER_PARTY, employee_name, party_name
from simulation.protocol.records import Status
from simulation.protocol.rules import rules_of

# What announcing a message to a peer costs (a Bitcoin inv entry: 4-byte type, 32-byte
# hash), counted in the uploaded bytes when the peer declines the message.
ANNOUNCEMENT_BYTES = 36


@dataclass(frozen=True)
class Envelope:
    send_tick: int
    sender: int
    sequence: int
    data: bytes
    receiver: int | None = None  # None: every party but the sender (one shared delay)
    hops: int = 1  # links this copy crossed since its author sent it (peer graph)
    key: bytes = b""  # sha256 of data (peer graph: who holds what)


class Router:
    """Broadcast: a message sent at tick t by party i reaches every other employee at
    tick t + delay, in (send tick, sender, sequence) order.

    With a network model (LATENCY, BANDWIDTH, LOSS_PROBABILITY, PARTITIONS or CHURN),
    each of ``receivers`` gets its own copy: after its own latency, after the sender has
    uploaded the copies before it (BANDWIDTH bytes per tick, one copy after another), or
    never (lost, sent across a split, or due while the receiver is offline). Direct
    messages (catch-up) go to one receiver the same way."""

    @classmethod
    def for_scenario(cls, scenario: Scenario) -> Router:
        """The scenario's delay and network model, with copies to every employee and
        the employer, or along the scenario's peer graph (TOPOLOGY)."""
        return cls(scenario.network_delay_ticks, Latency.of(scenario),
                   [*range(scenario.employees_num), EMPLOYER_PARTY],
                   Conditions.of(scenario), scenario.bandwidth, scenario.peer_graph)

    def __init__(self, delay: int, latency: Latency | None = None,
                 receivers: Sequence[int] = (), conditions: Conditions | None = None,
                 bandwidth: int = 0, graph: PeerGraph | None = None):
        if delay < 1:
            raise ValueError("delay must be at least 1 tick")
        self.delay = delay
        self.latency = latency
        self.conditions = conditions
        self.bandwidth = bandwidth
        self.graph = graph
        self.per_copy = (latency is not None or conditions is not None or bandwidth > 0
                         or graph is not None)
        self.receivers = sorted(receivers)
        self._receiver_set = frozenset(self.receivers)
        self._scheduled: dict[int, list[Envelope]] = defaultdict(list)
        self._sequence: dict[int, int] = defaultdict(int)
        self._upload_free: dict[int, float] = {}  # sender -> tick its uplink is free
        self.bytes_sent: dict[int, int] = defaultdict(int)  # by sender, every message
        # By sender, every copy it uploaded (a broadcast to k parties counts k times).
        self.uploaded: dict[int, int] = defaultdict(int)
        self.dropped: Counter[str] = Counter()  # copies not delivered, by cause
        # The peer graph (None: the full mesh). ``links``: every party's peers, the
        # employer's included; ``held``: per receiver, the first copy of each message it
        # was delivered (key -> sender, hops), so that a relay skips the peer it came
        # from, and later copies are counted as duplicates; ``heard``: copies the
        # employer was delivered, by sender.
        self.links: dict[int, tuple[int, ...]] = {}
        self.held: dict[int, dict[bytes, tuple[int, int]]] = defaultdict(dict)
        self.duplicates: Counter[int] = Counter()  # copies delivered again, by receiver
        self.declined: Counter[int] = Counter()  # announcements declined, by receiver
        self._coming: dict[int, set[bytes]] = defaultdict(set)  # receiver -> keys on the way
        self.heard: Counter[int] = Counter()
        if graph is not None:
            employer = set(graph.employer_peers)
            for index, peers in enumerate(graph.peers):
                self.links[index] = (*peers, EMPLOYER_PARTY) if index in employer else peers
            self.links[EMPLOYER_PARTY] = tuple(sorted(employer))

    def min_delay(self) -> int:
        """The fewest ticks any message can take (at least 1): a lower bound of every
        latency draw; the bandwidth only adds to it."""
        if self.latency is None:
            return self.delay
        users = [max(self.receivers) + 1] if self.receivers else []  # after the employees
        return self.latency.min_delay([*self.receivers, *users])

    def online(self, party: int, tick: int) -> bool:
        return self.conditions is None or self.conditions.online(party, tick)

    def linked(self, a: int, b: int) -> bool:
        """Whether a copy can go from ``a`` to ``b``: any two parties in the full mesh;
        along a link in a peer graph, where the users (outside the graph) reach every
        employee."""
        if self.graph is None or a not in self.links:
            return True
        return b in self.links[a]

    def submit(self, tick: int, sender: int, outgoing: Iterable[bytes],
               direct: Iterable[tuple[int, bytes]] = ()) -> None:
        if self.graph is not None:
            self._submit_along_links(tick, sender, outgoing, direct)
            return
        for data in outgoing:
            if self.per_copy:
                # Copies leave in receiver order starting after the sender, so no
                # employee always waits for the whole upload.
                after = [r for r in self.receivers if r > sender]
                before = [r for r in self.receivers if r < sender]
                self._send(tick, sender, data, after + before)
            else:
                self._scheduled[tick + self.delay].append(
                    Envelope(tick, sender, self._sequence[sender], data))
                self._sequence[sender] += 1
                self.bytes_sent[sender] += len(data)
                self.uploaded[sender] += len(data) * (
                    len(self.receivers) - (sender in self._receiver_set))
        for receiver, data in direct:
            if receiver != sender and receiver in self.receivers:
                self._send(tick, sender, data, [receiver])

    def _submit_along_links(self, tick: int, sender: int, outgoing: Iterable[bytes],
                            direct: Iterable[tuple[int, bytes]]) -> None:
        """Along the peer graph: a party's own message goes to each of its peers; a
        message it was delivered and now forwards (relay after validation, decided by
        the party) goes to its peers but the one it first came from, one hop further.
        The users hand theirs to every employee."""
        peers = self.links.get(sender)
        for data in outgoing:
            key = hashlib.sha256(data).digest()
            if peers is None:  # the users, to every employee (the employer keeps no pool)
                targets = [r for r in self.receivers if r != sender and r != EMPLOYER_PARTY]
                hops = 1
            else:
                came = self.held[sender].get(key)
                if came is None:  # its own message
                    self.held[sender][key] = (sender, 0)
                    source, hops = None, 1
                else:
                    source, hops = came[0], came[1] + 1
                targets = [p for p in peers if p != source]
            # Announce, then send to those who ask (Bitcoin's inv and getdata): a peer
            # that holds the message, or has a copy on its way, declines it, and only the
            # announcement crosses the link.
            wanted = []
            for r in targets:
                if key in self.held[r] or key in self._coming[r]:
                    self.uploaded[sender] += ANNOUNCEMENT_BYTES
                    self.declined[r] += 1
                else:
                    wanted.append(r)
            after = [r for r in wanted if r > sender]
            before = [r for r in wanted if r < sender]
            self._send(tick, sender, data, after + before, hops, key)
        for receiver, data in direct:
            if receiver == sender or receiver not in self.receivers:
                continue
            if not self.linked(sender, receiver):
                self.dropped["no link"] += 1
                continue
            self._send(tick, sender, data, [receiver], 1, hashlib.sha256(data).digest())

    def _send(self, tick: int, sender: int, data: bytes, receivers: list[int],
              hops: int = 1, key: bytes = b"") -> None:
        sequence = self._sequence[sender]
        self._sequence[sender] += 1
        self.bytes_sent[sender] += len(data)
        uploaded = max(float(tick), self._upload_free.get(sender, 0.0))
        for receiver in receivers:
            if self.conditions is not None and not self.conditions.reachable(
                    sender, receiver, tick):
                self.dropped["partition"] += 1
                continue
            self.uploaded[sender] += len(data)
            wait = 0
            if self.bandwidth > 0:
                uploaded += len(data) / self.bandwidth
                wait = math.ceil(uploaded - tick - 1e-9)
            if self.conditions is not None and self.conditions.lost(sender, receiver,
                                                                    sequence):
                self.dropped["loss"] += 1
                continue
            latency = (self.delay if self.latency is None
                       else self.latency.delay(sender, receiver, sequence))
            self._scheduled[tick + wait + latency].append(
                Envelope(tick, sender, sequence, data, receiver, hops, key))
            if key:
                self._coming[receiver].add(key)
        if self.bandwidth > 0:
            self._upload_free[sender] = uploaded

    def take(self, tick: int) -> list[Envelope]:
        """Every envelope due at ``tick``, in canonical order; forgets them. Copies due
        to an offline receiver are dropped."""
        due = self.peek(tick)
        scheduled = self._scheduled.pop(tick, [])
        if self.conditions is not None and self.conditions.churn:
            self.dropped["offline"] += len(scheduled) - len(due)
        if self.graph is not None:
            for e in due:
                assert e.receiver is not None  # every copy has its receiver here
                held = self.held[e.receiver]
                self._coming[e.receiver].discard(e.key)
                if e.key in held:
                    self.duplicates[e.receiver] += 1
                else:
                    held[e.key] = (e.sender, e.hops)
                if e.receiver == EMPLOYER_PARTY:
                    self.heard[e.sender] += 1
        return due

    def hops_to(self, key: bytes) -> dict[int, int]:
        """The hops of the first copy of a message each party was delivered."""
        return {party: held[key][1] for party, held in self.held.items() if key in held}

    def peek(self, tick: int) -> list[Envelope]:
        """What ``take(tick)`` will give, if nothing due at ``tick`` is sent before."""
        due = list(self._scheduled.get(tick, []))
        if self.conditions is not None and self.conditions.churn:
            due = [e for e in due if e.receiver is None or self.online(e.receiver, tick)]
        due.sort(key=lambda e: (e.send_tick, e.sender, e.sequence))
        return due

    @staticmethod
    def for_party(due: Sequence[Envelope], party: int) -> list[bytes]:
        return [e.data for e in due
                if e.sender != party and (e.receiver is None or e.receiver == party)]

    @staticmethod
    def for_parties(due: Sequence[Envelope], parties: Iterable[int]) -> dict[int, list[bytes]]:
        """``for_party`` of each of ``parties`` in one pass over ``due`` (a peer graph
        delivers thousands of single copies a tick; scanning them once per party was
        quadratic)."""
        out: dict[int, list[bytes]] = {party: [] for party in parties}
        for e in due:
            if e.receiver is None:
                for party, messages in out.items():
                    if party != e.sender:
                        messages.append(e.data)
            elif e.receiver != e.sender and e.receiver in out:
                out[e.receiver].append(e.data)
        return out

    def in_flight(self) -> list[bytes]:
        """Messages sent but not delivered to everyone yet (the run may end before they
        arrive), each once."""
        seen: set[tuple[int, int]] = set()
        out = []
        for tick in sorted(self._scheduled):
            for e in self._scheduled[tick]:
                if (e.sender, e.sequence) not in seen:
                    seen.add((e.sender, e.sequence))
                    out.append(e.data)
        return out


def network_facts(router: Router, last_tick: int) -> dict[str, Any]:
    """For the results: employees offline when the run ended and, with
    LATENCY="regions", every party's region."""
    conditions, latency = router.conditions, router.latency
    facts: dict[str, Any] = {
        "offline_at_end": [employee_name(i) for i in conditions.offline_at_end(last_tick)]
        if conditions is not None else [],
        "uploaded_bytes": {party_name(p): b for p, b in sorted(router.uploaded.items())
                           if p in router.receivers}}
    graph = router.graph
    if graph is not None:
        degrees = graph.degrees()
        facts["peer_graph"] = {
            "topology": graph.name,
            "degree_min": min(degrees), "degree_max": max(degrees),
            "degree_mean": round(sum(degrees) / len(degrees), 3),
            "employer_peers": [employee_name(i) for i in graph.employer_peers],
            # Copies a party already held or had on the way: declined on announcement,
            # or (catch-up answers) delivered again.
            "duplicates": sum(router.declined.values()) + sum(router.duplicates.values()),
            "duplicates_by_party": {party_name(p): router.declined[p] + router.duplicates[p]
                                    for p in sorted({*router.declined, *router.duplicates})},
            "employer_heard": {party_name(p): c for p, c in sorted(router.heard.items())},
            "links_dropped": router.dropped.get("no link", 0),
        }
    if latency is not None and latency.kind == "regions":
        facts["regions"] = {party_name(p):
                            REGIONS[latency.region(p)] for p in router.receivers}
    return facts


def target_reached(statuses: Sequence[Status], target_length: int) -> bool:
    """True when every given (live honest) employee's chain holds ``target_length``
    blocks and they all have the same block at height target_length - 1."""
    if not statuses:
        return False
    anchors = {s.anchor for s in statuses}
    if None in anchors or len(anchors) != 1:
        return False
    return all(s.height + 1 >= target_length for s in statuses)


# Training behaviours whose model a run reports: the honest one, and the poisoned one the
# colluders share. Other adversaries either do not train (lazy) or train honestly.
EVALUATED_BEHAVIOURS = ("honest", "poisoned")
# An evaluator evaluates at most the last this many stages of its own chain (with Keras an
# evaluation takes about 0.1 s, and an older stage is first replayed from a checkpoint).
MAX_EVALUATED_STAGES = 200


def planned_behaviour(scenario: Scenario, roles: dict[int, Role], index: int) -> str:
    """An employee's training for ``evaluation_plan`` (``config.training_of``: the
    poisoned kinds train alike): an honest employee on hardware
    that computes otherwise (HARDWARE "xla") is not the honest training's evaluator, so
    the reference hardware's training reaches every judged tip."""
    behaviour = training_of(roles.get(index, "honest"))
    computation = computation_of(scenario, index)
    return behaviour if computation == EXACT else f"{behaviour}-{computation}"


def evaluation_plan(live: Iterable[tuple[int, str, int]], employer_height: int | None
                    ) -> dict[int, list[int]]:
    """Who evaluates which stages when a run stops.

    ``live``: (index, behaviour, chain height) of every live employee, in index order.
    The first live employee of each evaluated behaviour evaluates its model after every
    stage its own chain certifies (0 .. height - 1, the last MAX_EVALUATED_STAGES of them
    in a longer chain), so the summary can show the accuracy along the chain block by
    block; and after the tip stage of every chain the summary judges (the employer's, and
    each evaluated behaviour's own), so it can name the accuracy of the model the employer
    receives and compare every tip's revealed secret with both trainings. (The poisoned
    branch may be a block ahead of the employer, whose copy is still in flight: the
    honest training must reach that stage too.) Every other employee gets an empty list.
    """
    first: dict[str, tuple[int, int]] = {}  # behaviour -> (index, height) of its evaluator
    for index, behaviour, height in live:
        if behaviour in EVALUATED_BEHAVIOURS and behaviour not in first:
            first[behaviour] = (index, height)
    tips = {height - 1 for _, height in first.values() if height >= 1}
    if employer_height:
        tips.add(employer_height - 1)
    plan: dict[int, list[int]] = {index: [] for index, _, _ in live}
    for index, height in first.values():
        own = range(max(0, height - MAX_EVALUATED_STAGES), height)
        plan[index] = sorted(set(own) | tips)
    return plan


# --- A run that cannot succeed ------------------------------------------------------------

# The start of ``stopped_by`` for a run ended because its honest chain cannot grow.
OUT_OF_REACH = "an honest chain that cannot grow"


def too_few_for_a_block(count: int, who: str, scenario: Scenario,
                        strangers_declare: bool = False) -> str | None:
    """Why ``count`` employees who accept only each other's training can never make a
    block alone (None: they may). A header carries EMPLOYER_CONFIDENCE declarations by
    distinct authors, and its STAKEHOLDERS_NUM stakeholders, distinct employees drawn by
    stake, must all sign or wrap it, which each does only for a header whose secret is
    its own training. ``strangers_declare``: fresh keys may declare for them (rule
    members open, a poisoned-grinder among them), so only the stakeholders bind."""
    declarers, stakeholders = scenario.employer_confidence, scenario.stakeholders_num
    short = []
    if count < declarers and not strangers_declare:
        short.append(f"the {declarers} declarers (EMPLOYER_CONFIDENCE)")
    if count < stakeholders:
        short.append(f"the {stakeholders} stakeholders (STAKEHOLDERS_NUM)")
    if not short:
        return None
    return f"{count} {who} employees, fewer than {' and '.join(short)} a header needs"


@dataclass(frozen=True)
class OutOfReach:
    """A scenario whose honest employees can never make a block: the run cannot reach
    its target, and ``stop_reason`` says at which tick the rest of its outcome is settled
    too. ``honest``: why the honest employees cannot; ``poisoned``: why the poisoned
    cannot either (None: they may)."""

    honest: str
    poisoned: str | None

    def stop_reason(self, honest_heights: Iterable[int], employer_height: int) -> str | None:
        """The run's ``stopped_by`` if it may end after this tick, else None.

        No honest block beyond genesis ever exists, so no honest chain reaches the
        target. The employer's light client takes any valid chain: once it holds a block
        (necessarily the poisoned employees'), it never goes back to genesis, and every
        chain it could move to is poisoned too, so it keeps taking the poisoned model;
        only that chain's length still changes. When the poisoned cannot make a block
        either, nothing can change at all. ``honest_heights``: the honest employees' last
        heights, a guard (an honest block's Roy holds it): any above 0 and the run goes on."""
        if any(height > 0 for height in honest_heights):
            return None
        if employer_height > 0:
            return (f"{OUT_OF_REACH}: {self.honest}; the target is out of reach, and the "
                    f"employer already takes the poisoned chain")
        if self.poisoned is not None:
            return (f"{OUT_OF_REACH}, nor a poisoned one: {self.honest}, {self.poisoned}; "
                    f"the target is out of reach, and the employer keeps the genesis block")
        return None


def out_of_reach(scenario: Scenario, roles: dict[int, Role]) -> OutOfReach | None:
    """The scenario's ``OutOfReach`` when its honest employees can provably never make a
    block, else None. ``roles``: the adversaries' (index -> role).

    Only where that is a proof: every adversary trains on the poisoned data (any other
    may train honestly, declare, sign or withhold blocks, and so help or hold an honest
    chain), they compute alike (so the employer's model has one name whichever poisoned
    block it holds), and VERIFICATION is exact (a tolerant check may accept poisoned
    losses that round like the honest ones). Under exact verification an honest employee
    accepts a declaration or signs a header only for its own training, and a poisoned
    one only for the poisoned training, which changes at least one label per stage. The
    counts are of every honest employee, live or not: one cut off may have declared or
    signed before it went, and that still counts."""
    if scenario.verification != "exact" or scenario.target_blockchain_length < 2:
        return None
    if any(role not in POISONED_TRAINING for role in roles.values()):
        return None
    if len({computation_of(scenario, index) for index in roles}) > 1:
        return None
    honest = too_few_for_a_block(scenario.employees_num - len(roles), "honest", scenario)
    if honest is None:
        return None
    strangers = not rules_of(scenario).members and Role.POISONED_GRINDER in roles.values()
    return OutOfReach(honest, too_few_for_a_block(len(roles), "poisoned", scenario, strangers))
