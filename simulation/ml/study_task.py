"""A training task for the studies that train with Keras directly, outside a network
(scripts/tolerance_study.py, attack_room.py, hardware_divergence.py).

TensorFlow set up as an employee's (``tf_env``: with a HARDWARE profile's environment,
before the import), the task's data loaded (MNIST for the default task), and the task as
the default scenario with TASK set delegates it: its model id, samples per stage and
learning rate, from which each script builds the trainers it compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = str(Path(__file__).resolve().parents[2])  # the checkout: where studies write


@dataclass(frozen=True)
class Task:
    scenario: Any  # config.Scenario, the defaults with TASK set
    mnist: Any  # the task's dataset.Dataset (MNIST for the default task)
    model_id: str
    per_stage: int  # samples per stage
    task: Any = None  # ml.tasks.Task
    learning_rate: float | None = None


def keras_task(environment: dict[str, str] | None = None, intra_op_threads: int = 1,
               task: str = "mnist-dnn") -> Task:
    """Call before anything imports TensorFlow; ``environment`` and ``intra_op_threads``:
    a HARDWARE profile's (ml.hardware.TF_ENVIRONMENT_OF_COMPUTATION, ...INTRA_OP_THREADS...);
    ``task``: a TASK value."""
    from simulation.config import default_scenario
    from simulation.ml import tf_env

    tf_env.use_profile_environment(environment or {})
    tf_env.import_tensorflow_quietly()
    tf_env.limit_tf_threads(intra_op_threads)  # before the first op, as trainers do
    from simulation.ml.tasks import learning_rate_of, model_id_of, stage_samples_of, task_of

    scenario = default_scenario().replace(task=task)
    found = task_of(scenario)
    return Task(scenario, found.load_data(), model_id_of(scenario), stage_samples_of(scenario),
                found, learning_rate_of(found, scenario))
