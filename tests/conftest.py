"""Makes the repository root importable (``simulation``, ``tests.helpers``) whichever way
pytest is started, and keeps the ``tf`` marker honest: a test not marked ``tf`` that
imports TensorFlow (or Keras), in this process or in a process it starts through the
simulator, fails, so that ``-m 'not tf'`` really runs without TensorFlow."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


import pytest  # noqa: E402

from simulation.ml.tf_env import FORBIDDEN_BY_TEST  # noqa: E402


class _NoTensorFlow:
    """A meta path finder that refuses TensorFlow and Keras (while a test not marked tf
    runs in a process that has not imported them yet)."""

    def __init__(self, test: str):
        self.test = test

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError(f"{name} imported by {self.test}, a test not marked tf")
        return None


@pytest.fixture(autouse=True)
def _tensorflow_only_in_tf_tests(request, monkeypatch):
    if request.node.get_closest_marker("tf") is not None:
        yield
        return
    monkeypatch.setenv(FORBIDDEN_BY_TEST, request.node.nodeid)
    if "tensorflow" in sys.modules:  # a tf test ran earlier: this process cannot tell
        yield
        return
    guard = _NoTensorFlow(request.node.nodeid)
    sys.meta_path.insert(0, guard)
    try:
        yield
    finally:
        sys.meta_path.remove(guard)
