"""The training task as the protocol sees it: stages, training secrets, model hashes.

Pure Python: what a stage is, how its secret is derived from the per-sample losses, and
the interface (``Trainer``) every trainer offers the employee. The trainers themselves
are in ``simulation.ml``.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from simulation.config import Scenario


@dataclass(frozen=True)
class StageResult:
    """What an employee keeps after training one stage."""

    stage: int
    losses: tuple[float, ...]  # per-sample losses, float32 values
    secret: bytes  # ts = h_B of the loss hash chain
    model_hash: bytes  # SHA-256 over the weights after the stage


class Trainer(Protocol):
    """Trains stages in order; ``result(s)`` trains every missing stage up to ``s``."""

    model_id: str

    def result(self, stage: int) -> StageResult: ...

    def test_accuracy(self, stage: int) -> float: ...


def stage_id(model_id: str, stage: int) -> str:
    return f"{model_id}:{stage}"


def samples_per_stage(train_size: int, iterations_per_epoch: int) -> int:
    return train_size // iterations_per_epoch


def stage_indices(stage: int, per_stage: int, train_size: int) -> list[int]:
    """Dataset indices of a stage, in dataset order, wrapping around for later epochs."""
    start = stage * per_stage
    return [(start + i) % train_size for i in range(per_stage)]


def float32_bytes(value: float) -> bytes:
    """Big-endian IEEE float32, as the secret's hash chain takes each loss."""
    return struct.pack(">f", value)


def training_secret(sid: str, losses: Sequence[float], author: bytes = b"") -> bytes:
    """h_0 = SHA-256(id_s); h_i = SHA-256(float32_be(l_i) || h_{i-1}); ts = h_B. With an
    ``author`` (rule personal-secrets) the chain starts from h_0 = SHA-256(id_s || author):
    that author's personal secret, which only somebody who has the losses can compute."""
    h = hashlib.sha256(sid.encode() + author).digest()
    for loss in losses:
        h = hashlib.sha256(float32_bytes(loss) + h).digest()
    return h


def quantized_loss(loss: float, tolerance: float) -> int:
    """The loss in units of TOLERANCE, rounded half up: the tolerant secret's input."""
    return math.floor(loss / tolerance + 0.5)


def tolerant_secret(sid: str, losses: Sequence[float], tolerance: float,
                    author: bytes = b"") -> bytes:
    """VERIFICATION="tolerant": the hash chain of ``training_secret`` over the quantized
    losses, h_i = SHA-256(int64_be(round(l_i / TOLERANCE)) || h_{i-1}), so that training
    whose losses differ by float rounding far below TOLERANCE gives the same secret (unless
    a loss lies within that rounding of a quantization boundary). ``author`` as in
    ``training_secret``."""
    h = hashlib.sha256(sid.encode() + author).digest()
    for loss in losses:
        h = hashlib.sha256(quantized_loss(loss, tolerance).to_bytes(8, "big", signed=True)
                           + h).digest()
    return h


class SecretRule(Protocol):
    """``rule(sid, losses[, author])``: a stage's training secret from its losses."""

    def __call__(self, sid: str, losses: Sequence[float], author: bytes = b"") -> bytes: ...


def secret_rule(scenario: Scenario) -> SecretRule:
    """How this scenario's employees derive a stage's secret from its losses:
    ``rule(sid, losses, author)``, author b"" for the stage's (shared) secret."""
    if scenario.verification == "tolerant":
        tolerance = scenario.tolerance

        def rounded(sid: str, losses: Sequence[float], author: bytes = b"") -> bytes:
            return tolerant_secret(sid, losses, tolerance, author)

        return rounded
    return training_secret


DEFAULT_LEARNING_RATE = 0.001  # Keras' Adam default


DEFAULT_TASK_ID = "mnist-dnn128-adam"  # the default task's part of the model id


def model_id(tf_seed: int, iterations_per_epoch: int,
             learning_rate: float = DEFAULT_LEARNING_RATE,
             tolerance: float | None = None, task: str = DEFAULT_TASK_ID,
             samples_per_stage: int | None = None) -> str:
    """Names the delegated task: the task (architecture, optimiser, data, batch size), the
    seed and the stage size: ``-s<samples>`` for a task that fixes it, else
    ``-ipe<ITERATIONS_PER_EPOCH>``. The learning rate is named only when it is not Keras'
    default, so the default id (and every secret derived from it) is the one the specification's
    examples use; a tolerance only in tolerant verification (its secrets follow another
    rule)."""
    stage = f"s{samples_per_stage}" if samples_per_stage is not None else \
        f"ipe{iterations_per_epoch}"
    name = f"{task}-tfseed{tf_seed}-{stage}"
    if learning_rate != DEFAULT_LEARNING_RATE:
        name += f"-lr{learning_rate!r}"
    if tolerance is not None:
        name += f"-tol{tolerance!r}"
    return name
