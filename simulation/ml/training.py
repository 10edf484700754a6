"""Trainers: the staged training loop both trainers share, and the hash trainer.

``HashTrainer`` is a deterministic, TensorFlow-free stand-in with the Keras trainer's
interface (``keras_training.KerasTrainer``), used by the protocol tests and by the
``--trainer hash`` mode.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from typing import Any

from simulation.ml.measured_divergence import MEASURED
from simulation.protocol.stages import (
    StageResult,
    stage_id,
    stage_indices,
    training_secret,
)

# (stage, dataset indices of the stage, their true labels) -> the labels to train on.
LabelMap = Callable[[int, Any, Any], Any]
# The hash trainer's stand-in for hardware that computes otherwise (labelled
# "simulated" in the results): for XLA and oneDNN the divergence measured with real Keras
# (ml.measured_divergence, written by scripts/hardware_divergence.py --noise-model): a
# loss changes with the measured share, by one of the measured differences (drawn by
# hash); the weights (the model hash) differ after every stage. 4 intra-op
# threads changed no loss: no noise. TF32 (GPU matrix products with a 10-bit mantissa,
# relative rounding 2**-11 = 4.9e-4 per product) cannot be measured here (no GPU): an
# assumption, every loss changed by up to 1e-3 relative.
TF32_RELATIVE_NOISE = 2e-3  # the width of the assumed uniform change: +-1e-3


def _measured(computation: str) -> tuple[float, tuple[float, ...]]:
    entry = MEASURED[computation]
    return entry["changed"] / entry["losses"], tuple(entry["differences"])  # type: ignore


# computation -> (share of losses that change, the differences to draw from)
SIMULATED_NOISE: dict[str, tuple[float, tuple[float, ...]]] = {
    "xla": _measured("xla"), "onednn": _measured("onednn")}
ASSUMED_NOISE = {"tf32": (1.0, TF32_RELATIVE_NOISE)}  # share, width of a uniform change
SIMULATED_COMPUTATIONS = (*SIMULATED_NOISE, *ASSUMED_NOISE)


class StagedTrainer:
    """Stages are trained in order, each once: ``result(s)`` trains the missing ones up to
    ``s`` (subclasses append to ``_results`` in ``_train_next``)."""

    _results: list[StageResult]

    def result(self, stage: int) -> StageResult:
        if stage < 0:
            raise ValueError(f"stage must be >= 0, got {stage}")
        while len(self._results) <= stage:
            self._train_next()
        return self._results[stage]

    def _train_next(self) -> None:
        raise NotImplementedError


class HashTrainer(StagedTrainer):
    """A deterministic, TensorFlow-free trainer with the Keras trainer's interface.

    The "model" after stage s is a hash chain over the stages; losses are derived from it
    and from the (possibly relabelled) samples, so a different label sequence gives a
    different secret and model hash, as real training would.
    """

    def __init__(self, model_id: str, per_stage: int, labels: Sequence[int] | None = None,
                 label_map: LabelMap | None = None, computation: str = "exact",
                 train_size: int = 60000, num_classes: int = 10):
        self.model_id = model_id
        self.computation = computation  # "exact", or one of SIMULATED_COMPUTATIONS
        self.per_stage = per_stage
        self.train_size = train_size  # the task's training set (MNIST's 60000 by default)
        self.num_classes = num_classes
        self._labels = labels  # None: label of sample i is i % num_classes
        self._label_map = label_map
        self._results: list[StageResult] = []
        self._state = hashlib.sha256(b"PoT-hash-trainer-init" + model_id.encode()).digest()

    def _label(self, index: int) -> int:
        if self._labels is None:
            return index % self.num_classes
        return int(self._labels[index % len(self._labels)])

    def _train_next(self) -> None:
        s = len(self._results)
        sid = stage_id(self.model_id, s)
        losses = []
        indices = stage_indices(s, self.per_stage, self.train_size)
        labels = [self._label(i) for i in indices]
        if self._label_map is not None:
            labels = [int(y) for y in self._label_map(s, indices, labels)]
        for index, label in zip(indices, labels, strict=True):
            self._state = hashlib.sha256(
                self._state + index.to_bytes(4, "big")
                # one byte, as for MNIST's ten classes; four for a task with more than 256
                + (bytes([label]) if label < 256 else label.to_bytes(4, "big"))
            ).digest()
            raw = int.from_bytes(self._state[:4], "big") / 2**32 * 3.0
            if self.computation in SIMULATED_NOISE:
                raw += self._change(self._state)
            elif self.computation in ASSUMED_NOISE:
                raw *= 1 + self._change(self._state)
            losses.append(struct.unpack(">f", struct.pack(">f", raw))[0])
        model_hash = self._state
        if self.computation in SIMULATED_COMPUTATIONS:
            model_hash = hashlib.sha256(b"PoT-" + self.computation.encode() + b"-weights"
                                        + self._state).digest()
        self._results.append(
            StageResult(s, tuple(losses), training_secret(sid, losses), model_hash)
        )

    def _change(self, state: bytes) -> float:
        """This computation's change of one loss (0 when it leaves it as it is): a
        measured difference, or for an assumed model a relative change."""
        draw = hashlib.sha256(b"PoT-" + self.computation.encode() + state).digest()
        u = int.from_bytes(draw[:4], "big") / 2**32
        v = int.from_bytes(draw[4:8], "big")
        if self.computation in SIMULATED_NOISE:
            share, changes = SIMULATED_NOISE[self.computation]
            return changes[v % len(changes)] if u < share else 0.0
        share, width = ASSUMED_NOISE[self.computation]
        return width * (v / 2**32 - 0.5) if u < share else 0.0

    def test_accuracy(self, stage: int) -> float:
        # Not a model: a stand-in number that still depends on the stage's state.
        state = self.result(stage).model_hash
        return int.from_bytes(state[:2], "big") / 65535
