"""Adversarial employees: each behaviour is a small strategy on top of the honest one.

A strategy is a subclass of ``Employee`` that overrides one hook (how it trains, what it
adds to its duties, whether it signs or wraps). ``poisoned`` needs no subclass at all:
it is an honest employee whose trainer sees poisoned labels, and the poisoned collude
simply because they all train on the same poisoned data. Which employee gets which
behaviour is drawn from the scenario seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from simulation.config import POISONED_TRAINING, Scenario, computation_of, parse_adversaries
from simulation.ml.training import HashTrainer, LabelMap
from simulation.node.employee import DEBUG, INFO, Employee, Ready, short
from simulation.protocol import lottery
from simulation.protocol.encoding import KeyPair, encode, sha256
from simulation.protocol.ledger import Genesis
from simulation.protocol.messages import TD, BlockHeader, TrainingDeclaration
from simulation.protocol.stages import (
    MNIST_TRAIN_SIZE,
    StageResult,
    Trainer,
    model_id_of,
    samples_per_stage,
    stage_id,
)

HONEST = "honest"


def assign_adversaries(scenario: Scenario) -> dict[int, str]:
    """Employee index -> behaviour, for the adversaries only; deterministic from SEED."""
    counts = parse_adversaries(scenario.adversaries)
    total = sum(counts.values())
    rng = random.Random(f"PoT-adversaries-{scenario.seed}")
    chosen = rng.sample(range(scenario.employees_num), total)
    roles: dict[int, str] = {}
    position = 0
    for behaviour, count in counts.items():
        for index in chosen[position:position + count]:
            roles[index] = behaviour
        position += count
    return dict(sorted(roles.items()))


def behaviour_of(roles: dict[int, str], index: int) -> str:
    return roles.get(index, HONEST)


def poison_labels(seed: int, rate: float) -> LabelMap:
    """The poisoned data every poisoned employee shares: in each stage, round(rate * B)
    samples, chosen by a PRNG seeded from the scenario seed and the stage, get the label
    (y + 1) mod 10."""

    def label_map(stage: int, indices: Any, labels: Any) -> list[int]:
        out = [int(y) for y in labels]
        count = max(1, round(rate * len(out)))
        rng = random.Random(f"PoT-poison-{seed}-{stage}")
        for position in rng.sample(range(len(out)), min(count, len(out))):
            out[position] = (out[position] + 1) % 10
        return out

    return label_map


def label_map_for(scenario: Scenario, behaviour: str) -> LabelMap | None:
    if behaviour in POISONED_TRAINING:
        return poison_labels(scenario.seed, scenario.poison_rate)
    return None


def hash_trainer_for(scenario: Scenario) -> Callable[[int, str], Trainer]:
    """Trainers for the TensorFlow-free mode and the protocol tests."""
    mid = model_id_of(scenario)
    per_stage = samples_per_stage(MNIST_TRAIN_SIZE, scenario.iterations_per_epoch)
    return lambda index, behaviour: HashTrainer(
        mid, per_stage, label_map=label_map_for(scenario, behaviour),
        computation=computation_of(scenario, index))


class Crashed(Exception):
    """Raised by a crashing employee's step; the process wrapper exits on it."""


class LazyEmployee(Employee):
    """Does not train: declares a made-up secret and copies a model hash it has seen. It
    follows the chain like a light client, checking everything but training."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ctx.own_stage = None

    def _own_stage(self, stage: int) -> StageResult:
        made_up = sha256(b"lazy" + self.keys.public + stage.to_bytes(8, "big"))
        seen = [td.model_hash for tds in self.declarations.values() for td in tds.values()
                if td.stage_id == stage_id(self.model_id, stage) and td.author != self.keys.public]
        return StageResult(stage, (), made_up, seen[0] if seen else made_up)


class ForgerEmployee(Employee):
    """Honest duties plus one forged declaration per tick, cycling through four forgeries:
    a bad signature, a commitment to a wrong secret, a lottery win it did not win, and a
    tick in the future. Each is signed correctly where the forgery is not the signature,
    so receivers reject it for exactly that fault."""

    FORGERIES = ("bad signature", "wrong commitment", "lottery not won", "future tick")

    def _duties(self) -> None:
        super()._duties()
        tip = self.tree.tip
        sid = stage_id(self.model_id, tip.height)
        own = self._own_stage(tip.height)
        kind = self.FORGERIES[self.now % len(self.FORGERIES)]
        tick: int | None = self.now
        secret = own.secret
        if kind == "wrong commitment":
            tick = self._winning_tick(tip.hash, sid, tip.tick, won=True)
            secret = sha256(b"not the secret" + own.secret)
        elif kind == "lottery not won":
            tick = self._winning_tick(tip.hash, sid, tip.tick, won=False)
        elif kind == "future tick":
            tick = self.now + 5
        if tick is None:
            return
        td = TrainingDeclaration.create(
            self.keys, model_id=self.model_id, stage_id=sid, parent=tip.hash, tick=tick,
            model_hash=own.model_hash, secret=secret, coinstake=self.scenario.td_coinstake,
        )
        if kind == "bad signature":
            wire = dict(td.wire)
            wire["sig"] = sha256(b"forged") * 2
            td = TrainingDeclaration(wire)
        self.sent["forged " + TD] += 1
        self._out.append(td.to_bytes())
        self._log(INFO, f"sends forged TD ({kind}) {short(td.hash)}")

    def _winning_tick(self, parent: bytes, sid: str, since: int, won: bool) -> int | None:
        for tick in range(self.now, since - 1, -1):
            kernel = lottery.kernel(TD, self.keys.public, parent, sid, tick)
            if lottery.wins(kernel, self.scenario.td_coinstake) == won:
                return tick
        return None


class EquivocatorEmployee(Employee):
    """Sends two different headers for one lottery win (when it holds more declarations
    than it needs) and, as Roy, two different blocks for one header."""

    def _publish_header(self, bh: BlockHeader) -> None:
        super()._publish_header(bh)
        declarations = list(bh.declarations)
        others = [td for td in declarations if td.author != bh.author]
        if len(declarations) <= self.scenario.employer_confidence or not others:
            return
        fewer = [td for td in declarations if td is not others[-1]]
        stage = bh.height - 1
        twin = self._make_header(bh.parent, stage, bh.stage_id, self._own_stage(stage),
                                 bh.tick, declarations=fewer)
        self.sent["equivocating " + twin.kind] += 1
        self._out.append(twin.to_bytes())
        self._log(INFO, f"equivocates: second header {short(twin.hash)} for the same win")

    def _wrap(self, header: BlockHeader) -> None:
        first = self._build_block(header, self.scenario.max_block_transactions)
        second = self._build_block(header, 0 if first.transactions else 1)
        super()._publish_block(first)
        if second.hash != first.hash:
            self.sent["equivocating " + second.kind] += 1
            self._out.append(second.to_bytes())
            self._log(INFO, f"equivocates: second block {short(second.hash)} for header "
                            f"{short(header.hash)}")


class WithholderEmployee(Employee):
    """Never signs as a normal stakeholder and never wraps as Roy."""

    def _sign(self, bh: BlockHeader) -> None:
        self._log(INFO, f"withholds its signature for header {short(bh.hash)}")

    def _wrap(self, header: BlockHeader) -> None:
        self._log(INFO, f"withholds the block for header {short(header.hash)} (is Roy)")


class SpammerEmployee(Employee):
    """Honest otherwise, but adds junk to its outgoing messages every tick and, from
    tick ``OVERSIZED_AT``, writes a frame larger than the network accepts."""

    OVERSIZED_AT = 8

    def step(self, tick: int, deliveries: Any) -> Ready:
        ready = super().step(tick, deliveries)
        junk = [
            bytes(random.Random(f"spam-{self.index}-{tick}").randbytes(40)),
            encode({"kind": "XX", "payload": tick}),
            encode({"kind": TD, "author": self.keys.public}),
            b"",
        ]
        self.sent["spam"] += len(junk)
        self._log(DEBUG, f"adds {len(junk)} junk messages")
        return Ready(ready.tick, ready.outgoing + tuple(junk), ready.events, ready.direct)

    def oversized_frame(self, tick: int, limit: int) -> bytes | None:
        return b"\x00" * (limit + 1) if tick >= self.OVERSIZED_AT else None


class CrashingEmployee(Employee):
    """Its process dies at CRASH_AT_TICK."""

    def step(self, tick: int, deliveries: Any) -> Ready:
        if tick >= self.scenario.crash_at_tick:
            raise Crashed(f"{self.name} crashes at tick {tick}")
        return super().step(tick, deliveries)


STRATEGIES: dict[str, type[Employee]] = {
    HONEST: Employee,
    "poisoned": Employee,  # honest logic, poisoned trainer
    "lazy": LazyEmployee,
    "forger": ForgerEmployee,
    "equivocator": EquivocatorEmployee,
    "withholder": WithholderEmployee,
    "spammer": SpammerEmployee,
    "crash": CrashingEmployee,
}


def strategy_of(behaviour: str) -> type[Employee]:
    if behaviour in STRATEGIES:
        return STRATEGIES[behaviour]
    from simulation.node import attacks  # the attacks build on these strategies

    return {"sybil": attacks.SybilEmployee, "grinder": attacks.GrinderEmployee,
            "poisoned-grinder": attacks.PoisonedGrinderEmployee,
            "flooder": attacks.FlooderEmployee, "splitter": attacks.SplitterEmployee,
            "backdater": attacks.BackdaterEmployee,
            "junk-filler": attacks.JunkFillerEmployee,
            "selfish": attacks.SelfishEmployee}[behaviour]


def make_employee(behaviour: str, index: int, scenario: Scenario, genesis: Genesis,
                  trainer: Trainer, keys: KeyPair) -> Employee:
    employee = strategy_of(behaviour)(index, scenario, genesis, trainer, keys)
    employee.behaviour = behaviour
    return employee

