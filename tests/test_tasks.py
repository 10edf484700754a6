"""Training tasks (simulation.ml.tasks, issue 21): the built-in tasks, a task of the user's
own from a file or a module, the refusals before any process starts, the hash trainer and
poisoning for any task, and the useful-work accounting (simulation.report.work). The
tests marked tf train the tasks with real Keras."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from simulation import constants
from simulation.config import ScenarioError, default_scenario
from simulation.ml.tasks import (
    TASKS,
    Dataset,
    dataset_problems,
    declaration_problems,
    model_id_of,
    resolve_task,
    stage_samples_of,
    task_problems,
)
from simulation.net.lockstep import network_result, run_lockstep
from simulation.node.adversaries import assign_adversaries, poison_labels
from simulation.node.genesis import genesis_of
from simulation.report.reporting import render, summarize
from simulation.report.work import KINDS, useful_work

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = f"{ROOT / 'examples' / 'custom_task.py'}:TASK"

# A complete task of a user's own, in a temporary module: four points on a line, 2 classes.
USER_TASK = textwrap.dedent('''
    import numpy as np
    from simulation.ml.tasks import Dataset, Task

    def data():
        x = (np.arange(40, dtype=np.float32) / 40).reshape(40, 1)
        y = (np.arange(40) % 2).astype(np.uint8)
        return Dataset(x[:32], y[:32], x[32:], y[32:], "a line")

    def model(keras):
        return keras.Sequential([keras.Input(shape=(1,)),
                                 keras.layers.Dense(2, activation="softmax")])

    TASK = Task("line", data, model, (1,), 2, 32, 8, samples_per_stage=4, batch_size=2,
                optimizer="sgd", learning_rate=0.1)
''')


@pytest.fixture(autouse=True)
def _fresh_resolution():
    """Each test finds tasks anew (resolve_task remembers the TASK texts it resolved)."""
    resolve_task.cache_clear()
    yield
    resolve_task.cache_clear()


def _user_file(tmp_path: Path, source: str = USER_TASK, name: str = "mytask.py") -> Path:
    path = tmp_path / name
    path.write_text(source)
    return path


# --- the built-in tasks -----------------------------------------------------------------------


def test_the_default_task_keeps_the_model_id_every_earlier_run_used():
    assert constants.TASK == "mnist-dnn"
    assert model_id_of(default_scenario()) == "mnist-dnn128-adam-tfseed42-ipe6000"
    assert stage_samples_of(default_scenario()) == 10


def test_every_built_in_task_is_declared_fully_and_named_by_its_own_id():
    ids = {}
    for name, task in TASKS.items():
        assert task.name == name and declaration_problems(task) == [], name
        assert name in constants_text()  # the TASK knob's comment lists it
        ids[name] = model_id_of(default_scenario().replace(task=name))
    assert len(set(ids.values())) == len(ids)  # another task, another id: other secrets
    assert ids["mnist-dnn-batch32"] == "mnist-dnn-batch32-adam-b32-tfseed42-s320"
    assert ids["digits-mlp"] == "digits-mlp-adam-b1-tfseed42-s10-lr0.01"  # its own rate
    # LEARNING_RATE replaces a task's own rate (and names it)
    assert model_id_of(default_scenario().replace(task="digits-mlp", learning_rate=0.003)
                       ).endswith("-s10-lr0.003")
    # a task with its own stage size ignores ITERATIONS_PER_EPOCH
    assert stage_samples_of(default_scenario().replace(task="mnist-dnn-batch32",
                                                       iterations_per_epoch=60)) == 320


def constants_text() -> str:
    return (ROOT / "simulation" / "constants.py").read_text()


def test_the_digits_are_the_1797_of_the_uci_set_in_their_order():
    from simulation.ml.dataset import load_digits

    d = load_digits()
    assert dataset_problems(TASKS["digits-mlp"], d) == []
    # The class counts of the 1797 UCI optdigits test images, which scikit-learn ships.
    counts = np.bincount(np.concatenate([d.y_train, d.y_test]), minlength=10)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert d.x_train.dtype == np.float32 and float(d.x_train.max()) == 1.0
    assert np.all(d.x_train * 16 == np.round(d.x_train * 16))  # 0..16 / 16, exactly
    # The first digit of the set is a zero (scikit-learn's documentation shows it).
    assert d.y_train[0] == 0 and d.x_train[0, 0].tolist() == [0, 0, 5 / 16, 13 / 16,
                                                              9 / 16, 1 / 16, 0, 0]


# --- a task of the user's own ---------------------------------------------------------------


def test_a_task_from_a_file_and_from_a_module_is_the_same_task(tmp_path, monkeypatch):
    path = _user_file(tmp_path)
    from_file = resolve_task(f"{path}:TASK")
    assert from_file.name == "line" and from_file.batch_size == 2
    monkeypatch.syspath_prepend(str(tmp_path))
    from_module = resolve_task("mytask:TASK")
    assert from_module.identity == from_file.identity  # the same file, the same digest
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    scenario = default_scenario().replace(task=f"{path}:TASK")
    assert model_id_of(scenario) == f"line-sgd-b2-src{digest}-tfseed42-s4-lr0.1"
    # Any change to the file changes the id, so its secrets.
    other = _user_file(tmp_path, USER_TASK.replace("/ 40", "/ 41"), "other.py")
    assert model_id_of(default_scenario().replace(task=f"{other}:TASK")) != \
        model_id_of(scenario)
    assert task_problems(scenario) == []
    sys.modules.pop("mytask", None)


def test_the_example_task_is_complete_and_short():
    task = resolve_task(EXAMPLE)
    assert declaration_problems(task) == []
    assert dataset_problems(task, task.load_data()) == []
    lines = (ROOT / "examples" / "custom_task.py").read_text().splitlines()
    code = [line for line in lines if line.strip() and not line.startswith(("#", '"""'))]
    assert len(code) <= 45  # about 30 lines of code, as the issue asks
    assert task.name not in TASKS and task.input_shape == (2,)  # nothing built-in uses


BROKEN = [
    ("nope.py:TASK", None, "no file"),
    ("mytask.py:TASK", "syntax error(", "failed to load: SyntaxError"),
    ("mytask.py:TASK", "raise RuntimeError('no data here')", "RuntimeError: no data here"),
    ("mytask.py:MISSING", USER_TASK, "defines no MISSING"),
    ("mytask.py:NOT_A_TASK", USER_TASK + "NOT_A_TASK = 5\n",
     "is an object of type int, not a simulation.ml.tasks.Task"),
    ("mytask.py:BAD", USER_TASK + "BAD = Task('two words', data, model, (1,), 1, 32, 8)\n",
     "name 'two words' must be a word"),
    ("mytask.py:BAD", USER_TASK + "BAD = Task('t', data, model, (1,), 2, 32, 8, "
                                  "optimizer='rmsprop')\n", "optimizer must be one of adam, sgd"),
    ("mytask.py:BAD", USER_TASK + "BAD = Task('t', data, model, (0,), 2, 32, 8)\n",
     "input_shape must be a tuple of positive ints"),
    ("mytask.py:BAD", USER_TASK + "BAD = Task('t', data, model, (1,), 2, 32, 8)\n",
     "ITERATIONS_PER_EPOCH (6000) exceeds the 32 training samples of TASK t"),
    ("mytask.py:BAD", USER_TASK + "BAD = Task('t', data, model, (1,), 2, 32, 8, "
                                  "samples_per_stage=4, batch_size=8)\n",
     "a batch of 8 is more than a stage's 4 samples"),
    ("no_such_module_here:TASK", None, "module no_such_module_here failed to import"),
    ("mnist-dnnn", None, "is neither a built-in task (mnist-dnn, mnist-cnn"),
]


@pytest.mark.parametrize(("task", "source", "expected"), BROKEN,
                         ids=[f"{t}-{e[:24]}" for t, _, e in BROKEN])
def test_a_task_that_cannot_be_used_is_refused_in_one_line_before_anything_runs(
        tmp_path, monkeypatch, task, source, expected):
    if source is not None:
        _user_file(tmp_path, source)
    monkeypatch.chdir(tmp_path)
    scenario = default_scenario().replace(task=task, trainer="hash", backend="lockstep",
                                          log_file=str(tmp_path / "run.log"))
    found = task_problems(scenario)
    assert len(found) == 1 and expected in found[0], found
    assert "\n" not in found[0]
    from simulation.net.runner import run

    with pytest.raises(ScenarioError) as refused:
        run(scenario, quiet=True, results_path=str(tmp_path / "r.json"))
    assert refused.value.problems == found
    assert not (tmp_path / "run.log").exists() and not (tmp_path / "r.json").exists()


def test_data_that_does_not_match_its_task_is_named_field_by_field():
    task = TASKS["digits-mlp"]
    x = np.zeros((1500, 8, 8), np.float32)
    y = np.zeros(1500, np.uint8)
    xt, yt = np.zeros((297, 8, 8), np.float32), np.zeros(297, np.uint8)
    assert dataset_problems(task, Dataset(x, y, xt, yt, "ok")) == []
    assert dataset_problems(task, "arrays") == ["load_data returned a str, not a Dataset"]
    wrong = dataset_problems(task, Dataset(x[:, :7], y, xt.astype(np.float64), yt + 10, "?"))
    assert wrong == [
        "x_train has shape (1500, 7, 8), the task declares (1500, 8, 8)",
        "x_test is float64, the task declares float32",
        "y_test holds the label 10, outside 0..9"]
    nan = x.copy()
    nan[3, 3, 3] = np.nan
    assert dataset_problems(task, Dataset(nan, y, xt, yt, "?")) == [
        "x_train holds values that are not finite"]


# --- the hash trainer and poisoning for any task ---------------------------------------------


def test_poisoning_shifts_labels_within_the_tasks_classes():
    shift = poison_labels(seed=1, rate=1.0, num_classes=3)
    assert shift(0, [0, 1, 2], [0, 1, 2]) == [1, 2, 0]
    assert poison_labels(1, 1.0)(0, [0], [9]) == [0]  # MNIST's ten, as before


def test_a_lockstep_network_runs_every_task_with_the_hash_trainer(tmp_path):
    for name in [*TASKS, EXAMPLE]:
        scenario = default_scenario().replace(
            task=name, trainer="hash", backend="lockstep", employees_num=5,
            target_blockchain_length=4, adversaries="poisoned:1",
            log_file=str(tmp_path / "x.log"))
        result = network_result(run_lockstep(scenario))
        summary = summarize(scenario, genesis_of(scenario), result,
                            assign_adversaries(scenario), 0.0,
                            samples_per_stage=stage_samples_of(scenario))
        assert summary["finished"] and summary["training"]["secrets_identical"], name
        assert summary["employer"]["model_source"] == "honest", name
        work = summary["training"]
        assert work["work_unit"] == "samples"
        assert work["work"]["useful"] == work["certified_stages"] * stage_samples_of(scenario)


def test_the_hash_trainer_draws_a_tasks_stages_from_its_own_training_set():
    from simulation.ml.training import HashTrainer

    digits = HashTrainer("d", 1000, train_size=1500, num_classes=3)
    mnist = HashTrainer("d", 1000)
    assert digits.result(1).losses != mnist.result(1).losses  # indices 1000.. wrap at 1500
    assert [digits._label(i) for i in range(4)] == [0, 1, 2, 0]


# --- useful work --------------------------------------------------------------------------


def _summary(tmp_path, **changes):
    scenario = default_scenario().replace(trainer="hash", backend="lockstep",
                                          log_file=str(tmp_path / "x.log"), **changes)
    result = network_result(run_lockstep(scenario))
    return scenario, result, summarize(scenario, genesis_of(scenario), result,
                                       assign_adversaries(scenario), 0.0,
                                       samples_per_stage=10)


def test_useful_work_is_one_training_of_each_certified_stage(tmp_path):
    scenario, _, summary = _summary(tmp_path)
    t = summary["training"]
    assert t["certified_stages"] == summary["employer"]["chain_length"] - 1 == 5
    assert t["work"]["useful"] == 5 * 10
    # every honest employee trains every certified stage: 10 others re-train each
    assert t["work"]["verification"] == 10 * 5 * 10
    assert t["work"]["poisoned"] == t["work"]["discarded"] == 0
    assert sum(t["work"].values()) == t["work_total"]
    assert t["useful_share"] == round(50 / t["work_total"], 5)
    assert t["work_per_certified_sample"] == round(t["work_total"] / 50, 7)
    assert "Work: 660 samples of training, 8% of it useful" in render(summary)


def test_poisoned_work_is_its_own_kind_and_a_poisoned_chain_discards_the_honest(tmp_path):
    _, _, minority = _summary(tmp_path, adversaries="poisoned:3")
    work = minority["training"]["work"]
    assert minority["employer"]["model_source"] == "honest"
    assert work["poisoned"] > 0 and work["discarded"] == 0
    _, _, majority = _summary(tmp_path, adversaries="poisoned:6")
    work = majority["training"]["work"]
    assert majority["employer"]["model_source"] == "poisoned"
    assert work["discarded"] > 0 and work["poisoned"] == 0
    assert work["useful"] == majority["training"]["certified_stages"] * 10


def test_measured_cpu_seconds_replace_samples_when_every_trainer_has_them(tmp_path):
    scenario, result, _ = _summary(tmp_path, employees_num=4, target_blockchain_length=3)
    from simulation.protocol.names import employee_name
    from simulation.protocol.records import EmployeeReport

    reports = {n: EmployeeReport.from_wire(r) for n, r in result.reports.items()
               if n.startswith("E") and r}
    employer = EmployeeReport.from_wire(result.employer)
    names = {i: employee_name(i) for i in range(4)}
    # E0's stages cost 1 s each, the others' 2 s: the useful training is the block
    # trainer's, whoever that is, and the rest is verification or beyond the chain.
    timed = {n: dataclasses.replace(r, stage_cpu_seconds=tuple(
        (1.0 if n == "E0" else 2.0) for _ in r.secrets)) for n, r in reports.items()}
    work = useful_work(timed, set(), employer.chain, 10)
    assert work["work_unit"] == "cpu_seconds"
    trainers = [names[b.trainer] for b in employer.chain[1:]]
    assert work["work"]["useful"] == sum(1.0 if t == "E0" else 2.0 for t in trainers)
    assert work["work_total"] == sum(len(r.secrets) * (1.0 if n == "E0" else 2.0)
                                     for n, r in reports.items())
    # one employee without timings: everything is counted in samples again
    partly = dict(timed, E1=reports["E1"])
    assert useful_work(partly, set(), employer.chain, 10)["work_unit"] == "samples"
    # the hash trainer's CPU time is hashing: samples on every backend
    assert useful_work(timed, set(), employer.chain, 10,
                       real_training=False)["work_unit"] == "samples"
    assert set(work["work"]) == set(KINDS)


# --- real training ----------------------------------------------------------------------------


@pytest.mark.tf
def test_every_task_trains_with_keras_the_same_way_twice(hub_mnist):
    from simulation.ml import tf_env

    tf_env.import_tensorflow_quietly()
    from simulation.ml.keras_training import SNAPSHOTS_KEPT, KerasTrainer
    from simulation.ml.tasks import MNIST_DNN, learning_rate_of, stage_samples

    for name in [*TASKS, EXAMPLE]:
        task = resolve_task(name)
        scenario = default_scenario().replace(task=name)
        data = hub_mnist if task.load_data is MNIST_DNN.load_data else task.load_data()
        results = []
        for _ in range(2):
            trainer = KerasTrainer(model_id_of(scenario), data, 42,
                                   stage_samples(task, scenario),
                                   learning_rate=learning_rate_of(task, scenario), task=task)
            results.append([trainer.result(s) for s in range(2)])
        accuracy = trainer.test_accuracy(1)
        assert results[0] == results[1], name
        if name == "mnist-cnn":  # an old stage is replayed from a checkpoint, checked
            trainer.result(SNAPSHOTS_KEPT + 1)  # by its recorded model hash
            assert trainer.test_accuracy(0) >= 0 and trainer.replayed_stages == 1
        first = results[0][0]
        assert len(first.losses) == stage_samples(task, scenario)
        assert all(np.isfinite(first.losses)) and min(first.losses) > 0
        assert 0.0 <= accuracy <= 1.0


@pytest.mark.tf
def test_a_mini_batch_takes_its_losses_under_the_weights_it_is_trained_from(hub_mnist):
    """mnist-dnn-batch32 against a straightforward Keras reference: per batch, the
    per-sample losses of the model as it is, then one train_on_batch step of Adam."""
    from simulation.ml import tf_env

    tf_env.import_tensorflow_quietly()
    import keras

    from simulation.ml.keras_training import PIXEL_SCALE, KerasTrainer

    task = TASKS["mnist-dnn-batch32"]
    data = hub_mnist
    ours = KerasTrainer("batch-check", data, 7, 96, task=task).result(0).losses
    keras.utils.set_random_seed(7)
    model = task.build_model(keras)
    model.compile(optimizer=keras.optimizers.Adam(),
                  loss=keras.losses.SparseCategoricalCrossentropy())
    per_sample = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    reference = []
    for start in range(0, 96, 32):
        x = PIXEL_SCALE[data.x_train[start:start + 32]]
        y = data.y_train[start:start + 32].astype(np.int32)
        reference += [float(v) for v in np.asarray(per_sample(y, model(x)))]
        model.train_on_batch(x, y)
    assert ours[:32] == tuple(reference[:32])  # the same weights: the same numbers
    np.testing.assert_allclose(ours, reference, rtol=1e-5)  # after Adam steps: rounding


@pytest.mark.tf
@pytest.mark.processes
def test_the_example_task_runs_a_network_and_a_task_that_fits_no_model_is_refused(tmp_path):
    from simulation.net.runner import RunAborted, run

    scenario = default_scenario().replace(
        task=EXAMPLE, employees_num=3, target_blockchain_length=3, seed=2,
        log_file=str(tmp_path / "pot.log"))
    outcome = run(scenario, quiet=True)
    s = outcome.summary
    assert outcome.exit_code == 0 and s["self_check"] == {"passed": True, "failures": []}
    assert s["training"]["secrets_identical"] is True
    assert isinstance(s["model"]["test_accuracy"], float)
    training = s["training"]
    assert training["work_unit"] == "cpu_seconds" and 0 < training["useful_share"] < 1
    assert abs(sum(training["work"].values()) - training["work_total"]) < 1e-3
    assert "the data of TASK spirals-mlp loaded from three spirals" in \
        (tmp_path / "pot.log").read_text()

    # A model whose output is not the task's classes: refused by the loader child, in
    # one line, before any employee starts.
    _user_file(tmp_path, USER_TASK.replace("Dense(2,", "Dense(3,"), "wrong.py")
    wrong = scenario.replace(task=f"{tmp_path / 'wrong.py'}:TASK",
                             log_file=str(tmp_path / "wrong.log"))
    with pytest.raises(RunAborted) as refused:
        run(wrong, quiet=True)
    assert refused.value.line == ("TASK line: the model maps a batch of 2 inputs to shape "
                                  "(2, 3), not (2, 2) class probabilities")
    assert "E0 ready" not in (tmp_path / "wrong.log").read_text()


# --- the stage cache --------------------------------------------------------------------------


@pytest.mark.tf
def test_a_trainer_that_reads_stages_from_the_cache_gives_what_training_gives(tmp_path,
                                                                             hub_mnist):
    from simulation.ml import tf_env

    tf_env.import_tensorflow_quietly()
    from simulation.ml.keras_training import KerasTrainer
    from simulation.ml.stage_cache import StageCache

    def trainer(cache):
        return KerasTrainer("cache-check", hub_mnist, 42, 10, stage_cache=cache)

    plain = trainer(None)
    expected = [plain.result(s) for s in range(5)]
    first = trainer(StageCache(str(tmp_path), "a line"))
    assert [first.result(s) for s in range(3)] == expected[:3]
    assert (first.stage_cache.hits, first.stage_cache.stores) == (0, 3)
    second = trainer(StageCache(str(tmp_path), "a line"))
    assert [second.result(s) for s in range(3)] == expected[:3]
    assert (second.stage_cache.hits, second.stage_cache.stores) == (3, 0)
    # Stage 3 is not stored: trained from the state read after stage 2, as training goes.
    assert second.result(3) == expected[3] and second.stage_cache.stores == 1
    assert second.test_accuracy(1) == plain.test_accuracy(1)
    assert second.result(4) == expected[4]  # after an evaluation, still the same line
    # Another line (another computation, labels or task) shares nothing.
    other = trainer(StageCache(str(tmp_path), "another line"))
    other.result(0)
    assert (other.stage_cache.hits, other.stage_cache.stores) == (0, 1)


def test_the_stage_cache_needs_real_training():
    from simulation.config import problems

    assert problems(default_scenario().replace(trainer="hash", stage_cache="/tmp/x")) == [
        "STAGE_CACHE needs TRAINER keras (the hash trainer has nothing worth caching)"]
    assert problems(default_scenario().replace(stage_cache="/tmp/x")) == []


@pytest.mark.tf
@pytest.mark.processes
def test_a_run_with_the_stage_cache_gives_the_run_without_it(tmp_path, keras_run):
    """conftest's Keras run (4 employees, one poisoned) again with STAGE_CACHE: the same
    chain, secrets and accuracy, most stages read instead of trained, and the results
    say the CPU figures do not measure the network."""
    from simulation.net.runner import run

    cached = run(keras_run.scenario.replace(stage_cache=str(tmp_path / "cache"),
                                            log_file=str(tmp_path / "cached.log")),
                 quiet=True)
    before, after = keras_run.outcome.summary, cached.summary
    assert cached.exit_code == 0 and after["self_check"]["passed"]
    for key in ("chain", "blocks", "employer", "model", "messages", "rewards", "ticks"):
        assert after[key] == before[key], key
    assert after["training"]["secrets_identical"] is True
    assert after["training"]["work_unit"] == "samples"
    assert after["training"]["stage_cache"] == str(tmp_path / "cache")
    log = (tmp_path / "cached.log").read_text()
    reads = [int(n) for n in re.findall(r"read (\d+) stages from the stage", log)]
    assert len(reads) == 4 and sum(reads) > 0  # the three honest share one line
    assert "this run's CPU seconds do not measure the network" in render(after)


def test_every_kind_of_work_is_counted_where_report_work_says(tmp_path):
    """Four made-up employees on a chain certifying stages 0 and 1 (stage 0 by E1, stage 1
    by E0), their costs chosen so that every kind and every rounding shows."""
    _, result, _ = _summary(tmp_path, employees_num=4, target_blockchain_length=3)
    from simulation.protocol.records import ChainEntry, EmployeeReport

    template = EmployeeReport.from_wire(result.reports["E0"])
    s0, s1, s2 = b"s0" * 16, b"s1" * 16, b"s2" * 16
    chain = (ChainEntry(0, b"g" * 32, 0), ChainEntry(1, b"a" * 32, 5, trainer=1, secret=s0),
             ChainEntry(2, b"b" * 32, 9, trainer=0, secret=s1))
    made = {  # name -> (index, secrets, CPU seconds per stage)
        "E0": (0, (s0, s1, s2), (0.11111, 0.22222, 0.33333)),  # honest, one stage beyond
        "E1": (1, (s0,), (1.01,)),  # trained stage 0 only: the others are still counted
        "E2": (2, (b"p0" * 16, b"p1" * 16, b"p2" * 16), (2.00001, 2.00002, 2.00003)),
        "E3": (3, (b"x0" * 16, b"x1" * 16), (3.3, 3.3)),  # honest, computes otherwise
    }
    reports = {n: dataclasses.replace(template, index=i, secrets=secrets,
                                      stage_cpu_seconds=cpu)
               for n, (i, secrets, cpu) in made.items()}
    work = useful_work(reports, {"E2"}, chain, 3)
    useful, verification, beyond = 1.01 + 0.22222, 0.11111, 0.33333
    poisoned, discarded = 2.00001 + 2.00002 + 2.00003, 6.6  # E2's third stage too
    total = useful + verification + beyond + poisoned + discarded
    assert work == {
        "work_unit": "cpu_seconds", "work_total": round(total, 4),
        "work": {"useful": round(useful, 4), "verification": round(verification, 4),
                 "beyond_chain": round(beyond, 4), "poisoned": round(poisoned, 4),
                 "discarded": round(discarded, 4)},
        "useful_share": round(useful / total, 5), "certified_stages": 2,
        "work_per_certified_sample": round(total / 6, 7),
        "useful_work_per_certified_sample": round(useful / 6, 7)}
    # The same trainings if E0 and E1 were the poisoned side and their chain won: what
    # the others trained is discarded, beyond the chain too.
    flipped = useful_work(reports, {"E0", "E1"}, chain, 3)["work"]
    assert flipped == {"useful": round(useful, 4), "verification": round(verification, 4),
                       "beyond_chain": round(beyond, 4), "poisoned": 0.0,
                       "discarded": round(poisoned + discarded, 4)}
    # Untimed and without the task's stage size: every trained stage counts 1.
    untimed = {n: dataclasses.replace(r, stage_cpu_seconds=None) for n, r in reports.items()}
    counted = useful_work(untimed, {"E2"}, chain, None)
    assert counted["work_unit"] == "stages" and counted["work_total"] == 9
    assert counted["work"] == {"useful": 2, "verification": 1, "beyond_chain": 1,
                               "poisoned": 3, "discarded": 2}
    assert counted["work_per_certified_sample"] is None
    assert counted["useful_work_per_certified_sample"] is None
    assert useful_work({}, set(), chain[:1], 3)["useful_share"] is None


@pytest.mark.tf
def test_the_sgd_optimizer_steps_as_keras_sgd_does(tmp_path):
    """A task with optimizer "sgd" (the temporary module's: batches of 2, rate 0.1)
    against Keras' own SGD through train_on_batch, two stages."""
    from simulation.ml import tf_env

    tf_env.import_tensorflow_quietly()
    import keras

    from simulation.ml.keras_training import KerasTrainer

    task = resolve_task(f"{_user_file(tmp_path)}:TASK")
    data = task.load_data()
    trainer = KerasTrainer("sgd-check", data, 3, 4, learning_rate=0.1, task=task)
    ours = [loss for s in range(2) for loss in trainer.result(s).losses]
    keras.utils.set_random_seed(3)
    model = task.build_model(keras)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy())
    per_sample = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    reference = []
    for start in range(0, 8, 2):
        x, y = data.x_train[start:start + 2], data.y_train[start:start + 2].astype(np.int32)
        reference += [float(v) for v in np.asarray(per_sample(y, model(x)))]
        model.train_on_batch(x, y)
    assert tuple(ours[:2]) == tuple(reference[:2])  # before any step: the same weights
    np.testing.assert_allclose(ours, reference, rtol=1e-6)
