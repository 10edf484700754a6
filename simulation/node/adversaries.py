"""Adversarial employees: each role is a small behaviour on top of the honest one.

A behaviour (``node.behaviour``) overrides one or two hooks of the honest conduct (how it
trains, what it adds to its duties, whether it signs or wraps). ``poisoned`` needs none
at all: it is an honest employee whose trainer sees poisoned labels, and the poisoned
collude simply because they all train on the same poisoned data. Which employee gets
which role is drawn from the scenario seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from simulation.config import POISONED_TRAINING, Role, Scenario, computation_of
from simulation.ml.tasks import model_id_of, stage_samples_of, task_of
from simulation.ml.training import HashTrainer, LabelMap
from simulation.node.behaviour import Behaviour
from simulation.node.employee import DEBUG, INFO, Employee, LogEvent, Ready, short
from simulation.protocol import lottery
from simulation.protocol.encoding import KeyPair, encode, sha256
from simulation.protocol.ledger import Genesis
from simulation.protocol.messages import TD, BlockHeader, TrainingDeclaration
from simulation.protocol.stages import (
    StageResult,
    Trainer,
    stage_id,
)

HONEST = Role.HONEST


def assign_adversaries(scenario: Scenario) -> dict[int, Role]:
    """Employee index -> role, for the adversaries only; deterministic from SEED. Under
    ADVERSARY_PLACEMENT "employer" they take the employer's peer slots first (in the
    order those were drawn), in ADVERSARIES order, and the rest are drawn among the
    other employees."""
    counts = scenario.adversary_counts
    total = sum(counts.values())
    rng = random.Random(f"PoT-adversaries-{scenario.seed}")
    graph = scenario.peer_graph
    if scenario.adversary_placement == "employer" and graph is not None:
        slots = list(graph.employer_peers[:total])
        others = [i for i in range(scenario.employees_num) if i not in slots]
        chosen = slots + rng.sample(others, total - len(slots))
    else:
        chosen = rng.sample(range(scenario.employees_num), total)
    roles: dict[int, Role] = {}
    position = 0
    for behaviour, count in counts.items():
        for index in chosen[position:position + count]:
            roles[index] = behaviour
        position += count
    return dict(sorted(roles.items()))


def behaviour_of(roles: dict[int, Role], index: int) -> Role:
    return roles.get(index, HONEST)


def poison_labels(seed: int, rate: float, num_classes: int = 10) -> LabelMap:
    """The poisoned data every poisoned employee shares: in each stage, round(rate * B)
    samples, chosen by a PRNG seeded from the scenario seed and the stage, get the label
    (y + 1) mod num_classes (the task's class count)."""

    def label_map(stage: int, indices: Any, labels: Any) -> list[int]:
        out = [int(y) for y in labels]
        count = max(1, round(rate * len(out)))
        rng = random.Random(f"PoT-poison-{seed}-{stage}")
        for position in rng.sample(range(len(out)), min(count, len(out))):
            out[position] = (out[position] + 1) % num_classes
        return out

    return label_map


def label_map_for(scenario: Scenario, behaviour: str) -> LabelMap | None:
    if behaviour in POISONED_TRAINING:
        return poison_labels(scenario.seed, scenario.poison_rate, task_of(scenario).num_classes)
    return None


def hash_trainer_for(scenario: Scenario) -> Callable[[int, str], Trainer]:
    """Trainers for the TensorFlow-free mode and the protocol tests."""
    mid = model_id_of(scenario)
    task = task_of(scenario)
    per_stage = stage_samples_of(scenario)
    return lambda index, behaviour: HashTrainer(
        mid, per_stage, train_size=task.train_size, num_classes=task.num_classes,
        label_map=label_map_for(scenario, behaviour),
        computation=computation_of(scenario, index))


class Crashed(Exception):
    """Raised by a crashing employee's step; the process wrapper exits on it."""


class Lazy(Behaviour):
    """Does not train: declares a made-up secret and copies a model hash it has seen. It
    follows the chain like a light client, checking everything but training."""

    role = Role.LAZY
    trains = False

    def own_stage(self, stage: int) -> StageResult:
        node = self.node
        made_up = sha256(b"lazy" + node.keys.public + stage.to_bytes(8, "big"))
        seen = [td.model_hash for r in node.rounds.values() for td in r.declarations.values()
                if td.stage_id == stage_id(node.model_id, stage)
                and td.author != node.keys.public]
        return StageResult(stage, (), made_up, seen[0] if seen else made_up)


class Forger(Behaviour):
    """Honest duties plus one forged declaration per tick, cycling through four forgeries:
    a bad signature, a commitment to a wrong secret, a lottery win it did not win, and a
    tick in the future. Each is signed correctly where the forgery is not the signature,
    so receivers reject it for exactly that fault."""

    role = Role.FORGER
    FORGERIES = ("bad signature", "wrong commitment", "lottery not won", "future tick")

    def duties(self) -> None:
        super().duties()
        node = self.node
        tip = node.tree.tip
        sid = stage_id(node.model_id, tip.height)
        own = self.own_stage(tip.height)
        kind = self.FORGERIES[node.now % len(self.FORGERIES)]
        tick: int | None = node.now
        secret = own.secret
        if kind == "wrong commitment":
            tick = self._winning_tick(tip.hash, sid, tip.tick, won=True)
            secret = sha256(b"not the secret" + own.secret)
        elif kind == "lottery not won":
            tick = self._winning_tick(tip.hash, sid, tip.tick, won=False)
        elif kind == "future tick":
            tick = node.now + 5
        if tick is None:
            return
        td = TrainingDeclaration.create(
            node.keys, model_id=node.model_id, stage_id=sid, parent=tip.hash, tick=tick,
            model_hash=own.model_hash, secret=secret, coinstake=node.scenario.td_coinstake,
        )
        if kind == "bad signature":
            wire = dict(td.wire)
            wire["sig"] = sha256(b"forged") * 2
            td = TrainingDeclaration(wire)
        node.sent["forged " + TD] += 1
        node.emit(td.to_bytes())
        node.log(INFO, f"sends forged TD ({kind}) {short(td.hash)}")

    def _winning_tick(self, parent: bytes, sid: str, since: int, won: bool) -> int | None:
        node = self.node
        for tick in range(node.now, since - 1, -1):
            kernel = lottery.kernel(TD, node.keys.public, parent, sid, tick)
            if lottery.wins(kernel, node.scenario.td_coinstake) == won:
                return tick
        return None


class Equivocator(Behaviour):
    """Sends two different headers for one lottery win (when it holds more declarations
    than it needs) and, as Roy, two different blocks for one header."""

    role = Role.EQUIVOCATOR

    def publish_header(self, bh: BlockHeader) -> None:
        super().publish_header(bh)
        node = self.node
        declarations = list(bh.declarations)
        others = [td for td in declarations if td.author != bh.author]
        if len(declarations) <= node.scenario.employer_confidence or not others:
            return
        fewer = [td for td in declarations if td is not others[-1]]
        stage = bh.height - 1
        twin = node.make_header(bh.parent, stage, bh.stage_id, self.own_stage(stage),
                                bh.tick, declarations=fewer)
        node.sent["equivocating " + twin.kind] += 1
        node.emit(twin.to_bytes())
        node.log(INFO, f"equivocates: second header {short(twin.hash)} for the same win")

    def wrap(self, header: BlockHeader) -> None:
        node = self.node
        first = node.build_block(header, node.scenario.max_block_transactions)
        second = node.build_block(header, 0 if first.transactions else 1)
        super().publish_block(first)
        if second.hash != first.hash:
            node.sent["equivocating " + second.kind] += 1
            node.emit(second.to_bytes())
            node.log(INFO, f"equivocates: second block {short(second.hash)} for header "
                           f"{short(header.hash)}")


class Withholder(Behaviour):
    """Never signs as a normal stakeholder and never wraps as Roy."""

    role = Role.WITHHOLDER

    def sign(self, bh: BlockHeader) -> None:
        self.node.log(INFO, f"withholds its signature for header {short(bh.hash)}")

    def wrap(self, header: BlockHeader) -> None:
        self.node.log(INFO, f"withholds the block for header {short(header.hash)} (is Roy)")


class Spammer(Behaviour):
    """Honest otherwise, but adds junk to its outgoing messages every tick and, from
    tick ``OVERSIZED_AT``, writes a frame larger than the network accepts."""

    role = Role.SPAMMER
    OVERSIZED_AT = 8

    def end_step(self, ready: Ready) -> Ready:
        node = self.node
        junk = [
            bytes(random.Random(f"spam-{node.index}-{ready.tick}").randbytes(40)),
            encode({"kind": "XX", "payload": ready.tick}),
            encode({"kind": TD, "author": node.keys.public}),
            b"",
        ]
        node.sent["spam"] += len(junk)
        # An event of its own: the step's events are already collected in ``ready``.
        said = LogEvent(DEBUG, f"{node.name} adds {len(junk)} junk messages")
        return replace(ready, outgoing=ready.outgoing + tuple(junk),
                       events=(*ready.events, said))

    def oversized_frame(self, tick: int, limit: int) -> bytes | None:
        return b"\x00" * (limit + 1) if tick >= self.OVERSIZED_AT else None


class Crashing(Behaviour):
    """Its process dies at CRASH_AT_TICK."""

    role = Role.CRASH

    def begin_step(self, tick: int) -> None:
        if tick >= self.node.scenario.crash_at_tick:
            raise Crashed(f"{self.node.name} crashes at tick {tick}")


class Poisoned(Behaviour):
    """The honest conduct; its trainer sees the poisoned labels (``label_map_for``)."""

    role = Role.POISONED


def behaviour_for(role: Role) -> Behaviour:
    """A fresh behaviour object of ``role`` (each employee keeps its own state in it)."""
    from simulation.node import attacks  # the attacks build on these behaviours

    kinds: dict[Role, type[Behaviour]] = {
        Role.HONEST: Behaviour, Role.POISONED: Poisoned, Role.LAZY: Lazy,
        Role.FORGER: Forger, Role.EQUIVOCATOR: Equivocator, Role.WITHHOLDER: Withholder,
        Role.SPAMMER: Spammer, Role.CRASH: Crashing, **attacks.ATTACKS}
    return kinds[role]()


def make_employee(role: Role, index: int, scenario: Scenario, genesis: Genesis,
                  trainer: Trainer, keys: KeyPair) -> Employee:
    return Employee(index, scenario, genesis, trainer, keys, behaviour_for(role))
