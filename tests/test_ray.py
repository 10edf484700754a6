"""Issue 10: the Ray backend gives the process backend's run, on one node and on a
multi-node cluster started in the test; its refusals and its failure handling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulation.config import default_scenario, problems
from simulation.net.lockstep import network_result, run_lockstep
from simulation.node.adversaries import assign_adversaries
from simulation.node.genesis import genesis_of
from simulation.report.reporting import summarize

ROOT = Path(__file__).resolve().parent.parent


def _lockstep(scenario):
    run = run_lockstep(scenario)
    return summarize(scenario, genesis_of(scenario), network_result(run),
                     assign_adversaries(scenario), 1.0)


def test_bad_backend_settings_are_refused_before_start():
    assert problems(default_scenario().replace(backend="spark")) == [
        "BACKEND must be one of process, ray, lockstep, got 'spark'"]
    assert problems(default_scenario().replace(ray_address="auto")) == [
        "RAY_ADDRESS is 'auto' but BACKEND is 'process'"]
    assert problems(default_scenario().replace(backend="ray", ray_shards=-1)) == [
        "RAY_SHARDS must be at least 0, got -1"]


def test_the_process_backend_refuses_more_employees_than_its_fork_server_can_wire():
    """`python main.py --trainer hash --employees-num 250` once died in multiprocessing's
    fork server ("too many fds", exit 4) after starting; it is now refused before."""
    found = problems(default_scenario().replace(employees_num=250, stakeholders_num=3))
    assert len(found) == 1 and "exceeds the process backend's limit of 240" in found[0]
    assert problems(default_scenario().replace(employees_num=250, backend="ray")) == []
    assert problems(default_scenario().replace(employees_num=240)) == []


def test_without_ray_the_ray_backend_stops_before_anything_starts(monkeypatch, tmp_path):
    from simulation.config import ScenarioError
    from simulation.net import ray_backend, runner

    monkeypatch.setattr(ray_backend, "ray_available", lambda: False)
    scenario = default_scenario().replace(backend="ray", trainer="hash",
                                          log_file=str(tmp_path / "x.log"))
    with pytest.raises(ScenarioError, match="needs Ray: pip install -r requirements-ray"):
        runner.run(scenario, quiet=True)


class _FakeRay:
    """Stands in for the ``ray`` module: shard 1's calls fail as a dead actor's do."""

    def __init__(self):
        self.calls = 0

    def get(self, ref, timeout=None):
        self.calls += 1
        if isinstance(ref, Exception):
            raise ref
        return ref


class _Actor:
    def __init__(self, shard, fail=False):
        self.shard, self.fail = shard, fail

    def __getattr__(self, method):
        actor = self

        class Method:
            @staticmethod
            def remote(frame):
                if actor.fail:
                    return RuntimeError("The actor died unexpectedly")
                return getattr(actor.shard, method)(frame)
        return Method


def test_a_failed_shard_cuts_its_employees_off_and_the_run_goes_on():
    from simulation.net.conductor import conduct
    from simulation.net.ray_backend import Shard, ShardHost

    scenario = default_scenario().replace(trainer="hash", employees_num=6)
    indices = [[0, 2, 4], [1, 3, 5]]
    actors = [_Actor(Shard(scenario, indices[0], users=True)), _Actor(None, fail=True)]
    host = ShardHost(_FakeRay(), actors, indices, timeout=5, users=6)
    done = conduct(scenario, host, range(6))
    assert sorted(done.crashed) == [1, 3, 5]
    assert set(host.failed) == {"E1", "E3", "E5"}
    assert "RuntimeError: The actor died unexpectedly" in host.failed["E1"]
    assert done.ticks == scenario.max_ticks or done.finished  # never a hang


def test_a_failed_shard_hosting_the_users_cuts_them_off_too():
    from simulation.net.conductor import conduct, result_of
    from simulation.net.ray_backend import Shard, ShardHost

    scenario = default_scenario().replace(trainer="hash", employees_num=6)
    indices = [[0, 2, 4], [1, 3, 5]]
    actors = [_Actor(None, fail=True), _Actor(Shard(scenario, indices[1]))]
    host = ShardHost(_FakeRay(), actors, indices, timeout=5, users=6)
    done = conduct(scenario, host, range(6))
    assert sorted(done.crashed) == [0, 2, 4, 6]
    assert set(host.failed) == {"E0", "E2", "E4", "users"}
    result = result_of(scenario, done.finished, done.ticks, done.stopped_by, {},
                       done.employer, done.crashed, done.relayed_bytes, done.dropped,
                       done.facts, done.in_flight)
    assert set(result.cut_off) == {"E0", "E2", "E4", "users"}


@pytest.mark.parametrize("changes", [
    dict(latency="constant:3"),
    dict(latency="uniform:2:5", adversaries="crash:1,poisoned:1", churn="4@8:30"),
    dict(topology="random:3", employer_peers=2, stage_ticks=2, latency="uniform:1:3",
         adversaries="poisoned:1")])
def test_shards_step_windows_through_their_frames_and_give_the_lockstep_run(changes):
    """The shards' frames (``window`` in, ``stepped`` out) with a window of several ticks
    give the in-process lockstep's run, ended at the same tick with the same reports."""
    from simulation.net.conductor import conduct, final_plan
    from simulation.net.ray_backend import Shard, ShardHost

    scenario = default_scenario().replace(trainer="hash", employees_num=7, seed=4, **changes)
    indices = [[0, 3, 6], [1, 4], [2, 5]]
    actors = [_Actor(Shard(scenario, shard, users=k == 0)) for k, shard in enumerate(indices)]
    host = ShardHost(_FakeRay(), actors, indices, timeout=5, users=7)
    roles = assign_adversaries(scenario)
    done = conduct(scenario, host, [i for i in range(7) if i not in roles])
    reference = run_lockstep(scenario, max_window=1)
    assert (done.ticks, done.finished, done.crashed) == (
        reference.ticks, reference.finished, reference.crashed)
    assert done.relayed_bytes == reference.relayed_bytes
    live = {i: s.height for i, s in done.statuses.items() if i not in done.crashed}
    reports = host.reports(final_plan(scenario, roles, live, done.employer))
    assert reports == network_result(reference).reports  # the users' too


@pytest.fixture
def ray(tmp_path_factory):
    """The ``ray`` module, for the tests that run the Ray backend: skipped without
    requirements-ray.txt (the tests above run either way). One such test at a time in
    the session, whichever worker runs it: each counts the Ray processes on the machine,
    and another test's would be seen as left behind."""
    module = pytest.importorskip("ray", reason="the Ray backend needs requirements-ray.txt")
    from helpers import exclusive, shared_dir

    with exclusive(shared_dir(tmp_path_factory) / "ray-tests.lock"):
        yield module


@pytest.mark.ray
@pytest.mark.parametrize("trainer", ["hash", pytest.param("keras", marks=pytest.mark.tf)])
def test_ray_gives_the_process_backends_run(tmp_path, trainer, ray, request):
    from simulation.net import runner

    if trainer == "keras":  # the process backend's run is conftest's shared keras_run
        keras_run = request.getfixturevalue("keras_run")
        base, process = keras_run.scenario, keras_run.outcome
    else:
        # Every delay at least 2 ticks: the shards step windows of 2 ticks. A peer graph
        # (relay after validation, catch-up from peers); the Keras run is a full mesh.
        base = default_scenario().replace(
            trainer=trainer, employees_num=5, target_blockchain_length=4, seed=3,
            latency="uniform:2:4", loss_probability=0.05, churn="2@10:30",
            topology="random:2", employer_peers=2)
        process = runner.run(base.replace(log_file=str(tmp_path / "p.log")), quiet=True)
    on_ray = runner.run(base.replace(backend="ray", ray_shards=2,
                                     log_file=str(tmp_path / "r.log")), quiet=True)
    assert process.exit_code == on_ray.exit_code == 0
    p, r = process.summary, on_ray.summary
    for key in ("chain", "ticks", "forks", "rewards", "transactions", "agreement", "model",
                "employer"):
        assert r[key] == p[key], key
    for key in ("propagation_p50_ticks", "stale_blocks", "copies_dropped", "bytes_sent",
                "topology", "hops_p90", "duplicates", "uploaded_bytes_per_employee",
                "employer_heard"):
        assert r["network"][key] == p["network"][key], key
    assert r["self_check"]["passed"]
    if trainer == "hash":
        assert r["chain"] == _lockstep(base)["chain"]
        assert r["training"]["work"] == p["training"]["work"]  # counted in samples
    else:  # each actor times its employees' stages, as an employee's process does
        assert r["training"]["work_unit"] == p["training"]["work_unit"] == "cpu_seconds"
        assert r["training"]["certified_stages"] == p["training"]["certified_stages"]


# The Ray backend's shards on a two-node cluster are tested with the sweep's runs on the
# same cluster (tests/test_sweep_cluster.py): one cluster start for both.


def _ray_processes() -> set[int]:
    found = subprocess.run(["pgrep", "-f", "raylet|gcs_server|ray::"], capture_output=True,
                           text=True).stdout.split()
    return {int(p) for p in found}


@pytest.mark.ray
def test_the_wall_clock_guard_stops_a_ray_run_too(tmp_path, ray):
    from simulation.net import runner

    scenario = default_scenario().replace(
        trainer="hash", backend="ray", tick_seconds=0.05, max_wall_seconds=4.0,
        log_file=str(tmp_path / "r.log"))
    outcome = runner.run(scenario, quiet=True)
    assert outcome.summary["stopped_by"] == "MAX_WALL_SECONDS"
    assert outcome.exit_code == 1 and not outcome.summary["finished"]
    assert "wall-clock guard" in (tmp_path / "r.log").read_text()


@pytest.mark.ray
def test_ctrl_c_leaves_no_ray_process_behind(tmp_path, ray):
    before = _ray_processes()
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--backend", "ray", "--trainer", "hash",
         "--tick-seconds", "0.05", "--no-run-dir", "--quiet"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        process_group=0)
    log = tmp_path / "pot_sim.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "shards on" not in (
            log.read_text() if log.exists() else ""):
        time.sleep(0.2)
    time.sleep(1.0)  # a few ticks into the run
    os.killpg(child.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 130, out[-2000:]
    assert "interrupted by SIGINT" in out
    # Ray's own processes take a moment to stop after the run (longer under load): every
    # one that the run started must be gone within 20 s.
    deadline = time.monotonic() + 20
    while _ray_processes() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _ray_processes() - before == set()


@pytest.mark.ray
def test_joining_no_cluster_is_a_clear_error_and_nothing_runs(tmp_path, monkeypatch, ray):
    from simulation.net import runner

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # The premise: no Ray instance runs here ("auto" joins any running one, also one that
    # an earlier test is still shutting down: it once did, and its actors died).
    deadline = time.monotonic() + 60
    while _ray_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _ray_processes() == set(), "a Ray instance still runs on this machine"
    scenario = default_scenario().replace(trainer="hash", backend="ray", ray_address="auto",
                                          log_file=str(tmp_path / "x.log"))
    with pytest.raises(runner.RunAborted, match="RAY_ADDRESS 'auto': no Ray cluster to join"):
        runner.run(scenario, quiet=True)


@pytest.mark.ray
def test_a_stale_cluster_address_is_refused_at_once(tmp_path, monkeypatch, ray):
    """"auto" resolves to the latest cluster this machine started, also one that has
    stopped since; ray.init then retried for many minutes (a CI run hung so). The run
    refuses it within seconds instead."""
    import socket

    from ray._private import services

    from simulation.net import runner

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr(services, "canonicalize_bootstrap_address", lambda *a, **k: dead)
    scenario = default_scenario().replace(trainer="hash", backend="ray", ray_address="auto",
                                          log_file=str(tmp_path / "x.log"))
    started = time.monotonic()
    with pytest.raises(runner.RunAborted, match=f"{dead} does not answer"):
        runner.run(scenario, quiet=True)
    assert time.monotonic() - started < 30


@pytest.mark.ray
@pytest.mark.tf
@pytest.mark.processes
def test_a_users_task_that_fits_no_model_is_refused_before_ray_starts(tmp_path, ray):
    """Ray workers load a task's data themselves; a task of the user's own is checked by
    the loader child first, as on the process backend, before any Ray process runs."""
    from simulation.net import runner

    (tmp_path / "wrong.py").write_text(
        "import numpy as np\n"
        "from simulation.ml.tasks import Dataset, Task\n"
        "def data():\n"
        "    x = np.zeros((8, 1), np.float32)\n"
        "    return Dataset(x, np.zeros(8, np.uint8), x[:2], np.zeros(2, np.uint8), 'z')\n"
        "def model(keras):\n"
        "    return keras.Sequential([keras.Input(shape=(1,)),\n"
        "                             keras.layers.Dense(3, activation='softmax')])\n"
        "TASK = Task('wrong', data, model, (1,), 2, 8, 2, samples_per_stage=4)\n")
    scenario = default_scenario().replace(
        task=f"{tmp_path / 'wrong.py'}:TASK", backend="ray", employees_num=3,
        log_file=str(tmp_path / "x.log"))
    with pytest.raises(runner.RunAborted) as refused:
        runner.run(scenario, quiet=True)
    assert refused.value.line == ("TASK wrong: the model maps a batch of 2 inputs to shape "
                                  "(2, 3), not (2, 2) class probabilities")
    assert not ray.is_initialized() and _ray_processes() == set()
