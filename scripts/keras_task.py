"""The default training task for the study scripts that train with Keras directly.

TensorFlow set up as an employee's (``tf_env``: with a HARDWARE profile's environment,
before the import), MNIST loaded, and the default scenario's task: its model id and
samples per stage, from which each script builds the trainers it compares.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@dataclass(frozen=True)
class Task:
    scenario: Any  # config.Scenario, the defaults
    mnist: Any  # dataset.Mnist
    model_id: str
    per_stage: int  # samples per stage


def keras_task(environment: dict[str, str] | None = None, intra_op_threads: int = 1) -> Task:
    """Call before anything imports TensorFlow; ``environment`` and ``intra_op_threads``:
    a HARDWARE profile's (ml.hardware.TF_ENVIRONMENT_OF_COMPUTATION, ...INTRA_OP_THREADS...)."""
    from simulation.config import default_scenario
    from simulation.ml import tf_env

    tf_env.use_profile_environment(environment or {})
    tf_env.import_tensorflow_quietly()
    tf_env.limit_tf_threads(intra_op_threads)  # before the first op, as trainers do
    from simulation.ml.dataset import load_mnist
    from simulation.ml.tasks import model_id_of, stage_samples_of

    scenario = default_scenario()
    return Task(scenario, load_mnist(), model_id_of(scenario), stage_samples_of(scenario))
