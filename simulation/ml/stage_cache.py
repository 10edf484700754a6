"""A stage cache shared by the Keras trainers of one machine (STAGE_CACHE, off by default).

Honest employees of one computation train bit-identical stages (tests/test_keras_training
trains in two fresh processes and compares every bit), and so do poisoned employees that
share one poisoned dataset. So the first trainer of a stage can store what it computed
(the losses, secret and model hash, and the full training state after the stage: weights,
optimizer moments and step) and every other trainer of the same line can read it instead
of training: one training per stage and line, for a whole run and for every run of a
study that shares the folder. A line is named by everything that changes the numbers:
the model id (task, seed, stage size, learning rate, tolerance), the computation (HARDWARE
profile), the labels (honest, or poisoned with its seed and rate), and TensorFlow's
version.

Who trains a stage holds a lock on it (flock on a file next to the entry), so that trainers
that need the stage at the same tick wait for it instead of training it too. Entries are
written to a temporary name and renamed into place: a reader sees a whole entry or none.

With the cache on, a run's CPU seconds do not measure the network (most trainers read
instead of training); the results say so and count work in samples.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from simulation.protocol.stages import StageResult


class StageCache:
    """The entries of one line in ``folder``: ``<line digest>/<stage>.npz``."""

    def __init__(self, folder: str, line: str):
        digest = hashlib.sha256(line.encode()).hexdigest()[:24]
        self.line = line
        self.folder = os.path.join(folder, digest)
        os.makedirs(self.folder, exist_ok=True)
        name_file = os.path.join(self.folder, "line.txt")
        if not os.path.exists(name_file):  # for a person looking at the folder
            with open(name_file + f".{os.getpid()}", "w", encoding="utf-8") as out:
                out.write(line + "\n")
            os.replace(name_file + f".{os.getpid()}", name_file)
        self.hits = 0  # stages read instead of trained, by this trainer
        self.stores = 0  # stages this trainer trained and stored

    def _path(self, stage: int) -> str:
        return os.path.join(self.folder, f"{stage}.npz")

    def load(self, stage: int) -> tuple[StageResult, list[np.ndarray]] | None:
        """The stage's result and the full training state after it, if stored."""
        path = self._path(stage)
        if not os.path.exists(path):
            return None
        with np.load(path, allow_pickle=False) as entry:
            count = int(entry["state_arrays"])
            state = [np.array(entry[f"state_{i}"]) for i in range(count)]
            result = StageResult(stage, tuple(float(v) for v in entry["losses"]),
                                 bytes(entry["secret"]), bytes(entry["model_hash"]))
        return result, state

    def store(self, result: StageResult, state: list[np.ndarray]) -> None:
        arrays: dict[str, Any] = {
            "losses": np.asarray(result.losses, np.float64),  # float32 values, exactly
            "secret": np.frombuffer(result.secret, np.uint8),
            "model_hash": np.frombuffer(result.model_hash, np.uint8),
            "state_arrays": np.asarray(len(state)),
        }
        arrays.update({f"state_{i}": array for i, array in enumerate(state)})
        temporary = self._path(result.stage) + f".{os.getpid()}.tmp.npz"
        np.savez(temporary, **arrays)
        os.replace(temporary, self._path(result.stage))
        self.stores += 1

    @contextmanager
    def training(self, stage: int) -> Iterator[None]:
        """Held while this trainer trains ``stage``: others wait, then read its entry."""
        with open(self._path(stage) + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
