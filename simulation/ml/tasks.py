"""Training tasks: what an employer delegates to the network.

A ``Task`` names its dataset (a loader of training and test arrays), its Keras model,
the optimizer and its learning rate, how many samples a stage trains and how many of them
one optimizer step takes (the batch size). The loss is the sparse categorical
cross-entropy of the model's class probabilities and the evaluation is the test accuracy:
every task is a classification, because the poisoning this simulator studies shifts labels.

The protocol's rules hold for every task: every employee trains stage s on the same
samples in the same order (``stage_indices``), the training secret hashes the per-sample
losses in order (with mini-batches, each batch's per-sample losses under the weights that
batch is trained from), and the model id names everything that changes the losses.

Built-in tasks (``TASKS``) need no download. The TASK knob takes their name, or a task of
the user's own: ``PATH.py:NAME`` (a file) or ``module:NAME`` (an importable module) whose
attribute NAME is a Task (examples/custom_task.py is one). This module imports neither
numpy nor TensorFlow at import time; a task's loader and model builder import what they
need when they are called.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from simulation.config import Scenario
from simulation.protocol.stages import DEFAULT_LEARNING_RATE, model_id, samples_per_stage

OPTIMIZERS = ("adam", "sgd")
X_DTYPES = ("uint8", "float32")  # uint8: pixels 0..255, trained as k / 255 in float32


@dataclass(frozen=True, eq=False)  # eq=False: "==" on arrays has no single truth value
class Dataset:
    """A task's arrays in their order: inputs (uint8 or float32) and integer labels."""

    x_train: Any  # numpy array (train_size, *input_shape)
    y_train: Any  # (train_size,) labels 0 .. num_classes - 1, uint8
    x_test: Any  # (test_size, *input_shape)
    y_test: Any  # (test_size,)
    source: str  # where the arrays came from, for the log


@dataclass(frozen=True, eq=False)
class Task:
    """One delegated training task. ``load_data()`` returns a ``Dataset`` whose shapes are
    the declared ones; ``build_model(keras)`` returns a Keras model that maps a batch of
    ``input_shape`` inputs to ``num_classes`` probabilities (a softmax output), with its
    weights drawn from Keras' seed (the trainer seeds Keras with TF_SEED first)."""

    name: str  # what the task is called in the model id and the results
    load_data: Callable[[], Dataset]
    build_model: Callable[[Any], Any]
    input_shape: tuple[int, ...]
    num_classes: int
    train_size: int
    test_size: int
    x_dtype: str = "float32"  # one of X_DTYPES
    samples_per_stage: int | None = None  # None: train_size // ITERATIONS_PER_EPOCH
    batch_size: int = 1  # samples per optimizer step
    optimizer: str = "adam"  # one of OPTIMIZERS: Keras' Adam defaults, or plain SGD
    learning_rate: float | None = None  # None: LEARNING_RATE (0.001 by default)
    description: str = ""
    # The model id's first part; None: "<name>-<optimizer>-b<batch_size>".
    id_name: str | None = None
    # Set by the loader for a task from the user's file: a digest of that file, so that any
    # change to it (model, data, settings) changes the model id.
    source_digest: str = field(default="", compare=False)

    @property
    def label_dtype(self) -> str:
        """The dtype of its labels: one byte while the classes fit in one."""
        return "uint8" if self.num_classes <= 256 else "int32"

    @property
    def identity(self) -> str:
        name = self.id_name or f"{self.name}-{self.optimizer}-b{self.batch_size}"
        return name + (f"-src{self.source_digest}" if self.source_digest else "")


class TaskError(ValueError):
    """A task that cannot be used; the message is one line saying why."""


# --- the built-in tasks ---------------------------------------------------------------------


def _mnist() -> Dataset:
    from simulation.ml.dataset import load_mnist

    return load_mnist()


def _dense(keras: Any, input_shape: tuple[int, ...], hidden: int) -> Any:
    """Input -> Flatten -> Dense ``hidden`` relu -> Dense 10 softmax."""
    return keras.Sequential([
        keras.Input(shape=input_shape),
        keras.layers.Flatten(),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def _dense_mnist(keras: Any) -> Any:
    """28x28 -> 128 relu -> 10 softmax (the specification's network)."""
    return _dense(keras, (28, 28), 128)


def _conv_mnist(keras: Any) -> Any:
    """A small convolutional network: 8 filters of 3x3, 2x2 max pooling, softmax."""
    return keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])


def _digits() -> Dataset:
    from simulation.ml.dataset import load_digits

    return load_digits()


def _dense_digits(keras: Any) -> Any:
    """8x8 -> 32 relu -> 10 softmax."""
    return _dense(keras, (8, 8), 32)


MNIST_DNN = Task(
    "mnist-dnn", _mnist, _dense_mnist, (28, 28), 10, 60000, 10000, x_dtype="uint8",
    id_name="mnist-dnn128-adam",  # the id every earlier run and the specification's examples use
    description="the dense network on MNIST, one sample per Adam step (the default)")
MNIST_CNN = Task(
    "mnist-cnn", _mnist, _conv_mnist, (28, 28), 10, 60000, 10000, x_dtype="uint8",
    description="a small convolutional network on MNIST, one sample per Adam step")
MNIST_DNN_BATCH32 = Task(
    "mnist-dnn-batch32", _mnist, _dense_mnist, (28, 28), 10, 60000, 10000, x_dtype="uint8",
    samples_per_stage=320, batch_size=32,
    description="the dense network on MNIST, mini-batches of 32, 10 Adam steps a stage")
DIGITS_MLP = Task(
    "digits-mlp", _digits, _dense_digits, (8, 8), 10, 1500, 297, samples_per_stage=10,
    learning_rate=0.01,
    description="a small dense network on scikit-learn's 8x8 digits (1500 to train on, "
                "297 to test)")

TASKS: dict[str, Task] = {t.name: t for t in (MNIST_DNN, MNIST_CNN, MNIST_DNN_BATCH32,
                                              DIGITS_MLP)}


# --- finding a task -------------------------------------------------------------------------


def _load_attribute(text: str) -> tuple[Any, str]:
    """The object ``text`` ("PATH.py:NAME" or "module:NAME") names, and the digest of the
    file that defines it."""
    where, _, attribute = text.rpartition(":")
    if not where or not attribute:
        raise TaskError(f"TASK {text!r} is neither a built-in task ({', '.join(TASKS)}) "
                        f"nor PATH.py:NAME or module:NAME")
    if where.endswith(".py"):
        path = os.path.abspath(where)
        if not os.path.isfile(path):
            raise TaskError(f"TASK {text!r}: no file {where}")
        # A name of its own per file, so two task files named alike do not collide.
        module_name = "pot_task_" + hashlib.sha256(path.encode()).hexdigest()[:16]
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec is not None and spec.loader is not None  # a .py file has both
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[module_name]
                raise TaskError(f"TASK {text!r}: {where} failed to load: "
                                f"{type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise TaskError(f"TASK {text!r}: module {where} failed to import: "
                            f"{type(exc).__name__}: {exc}") from None
        path = getattr(module, "__file__", None) or ""
    if not hasattr(module, attribute):
        raise TaskError(f"TASK {text!r}: {where} defines no {attribute}")
    digest = ""
    if path and os.path.isfile(path):
        with open(path, "rb") as source:
            digest = hashlib.sha256(source.read()).hexdigest()[:12]
    return getattr(module, attribute), digest


def declaration_problems(task: Any) -> list[str]:
    """What is wrong with a task's declared fields (nothing is loaded or built)."""
    if not isinstance(task, Task):
        return [f"is an object of type {type(task).__name__}, not a simulation.ml.tasks.Task"]
    out = []
    if not task.name or any(c.isspace() or c == ":" for c in task.name):
        out.append(f"name {task.name!r} must be a word without spaces or ':'")
    if not callable(task.load_data) or not callable(task.build_model):
        out.append("load_data and build_model must be functions")
    if not (isinstance(task.input_shape, tuple) and task.input_shape
            and all(isinstance(d, int) and d > 0 for d in task.input_shape)):
        out.append(f"input_shape must be a tuple of positive ints, got {task.input_shape!r}")
    for name in ("num_classes", "train_size", "test_size", "batch_size"):
        value = getattr(task, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            out.append(f"{name} must be a positive int, got {value!r}")
    if task.num_classes == 1:  # below 1 is reported above
        out.append(f"num_classes must be at least 2 (labels are shifted by poisoning), "
                   f"got {task.num_classes}")
    if task.samples_per_stage is not None and (
            not isinstance(task.samples_per_stage, int) or task.samples_per_stage < 1):
        out.append(f"samples_per_stage must be a positive int or None, got "
                   f"{task.samples_per_stage!r}")
    if task.x_dtype not in X_DTYPES:
        out.append(f"x_dtype must be one of {', '.join(X_DTYPES)}, got {task.x_dtype!r}")
    if task.optimizer not in OPTIMIZERS:
        out.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {task.optimizer!r}")
    if task.learning_rate is not None and not (
            isinstance(task.learning_rate, float) and 0 < task.learning_rate <= 1):
        out.append(f"learning_rate must be a float in (0, 1] or None, got "
                   f"{task.learning_rate!r}")
    return out


@lru_cache(maxsize=32)
def resolve_task(text: str) -> Task:
    """The task TASK names. Raises TaskError with one line when it cannot be had."""
    text = text.strip()
    if text in TASKS:
        return TASKS[text]
    found, digest = _load_attribute(text)
    wrong = declaration_problems(found)
    if wrong:
        raise TaskError(f"TASK {text!r}: {'; '.join(wrong)}")
    return replace(found, source_digest=digest)


def is_built_in(text: str) -> bool:
    """Whether TASK names one of TASKS (whose data and model the tests check)."""
    return text.strip() in TASKS


def task_of(scenario: Scenario) -> Task:
    return resolve_task(scenario.task)


def stage_samples(task: Task, scenario: Scenario) -> int:
    """Samples a stage trains: the task's own number, else its training set's size over
    ITERATIONS_PER_EPOCH."""
    if task.samples_per_stage is not None:
        return task.samples_per_stage
    return samples_per_stage(task.train_size, scenario.iterations_per_epoch)


def stage_samples_of(scenario: Scenario) -> int:
    return stage_samples(task_of(scenario), scenario)


def learning_rate_of(task: Task, scenario: Scenario) -> float:
    """LEARNING_RATE when it is set to other than the default, else the task's own rate
    (if it has one), else the default 0.001."""
    if scenario.learning_rate != DEFAULT_LEARNING_RATE or task.learning_rate is None:
        return scenario.learning_rate
    return task.learning_rate


def model_id_of(scenario: Scenario) -> str:
    """The task a scenario delegates: the task and every knob that changes its training
    (for the default task, the id the specification's examples use)."""
    task = task_of(scenario)
    tolerance = scenario.tolerance if scenario.verification == "tolerant" else None
    return model_id(scenario.tf_seed, scenario.iterations_per_epoch,
                    learning_rate_of(task, scenario), tolerance, task=task.identity,
                    samples_per_stage=task.samples_per_stage)


def task_problems(scenario: Scenario) -> list[str]:
    """Why the scenario's task cannot run with it (one line each); nothing is loaded but
    the task's own file. Whether its data fits its declaration and its model is asked by
    the child that loads the data (``dataset.load_shared_dataset``)."""
    try:
        task = task_of(scenario)
    except TaskError as exc:
        return [str(exc)]
    out = []
    if task.samples_per_stage is None and scenario.iterations_per_epoch > task.train_size:
        out.append(f"ITERATIONS_PER_EPOCH ({scenario.iterations_per_epoch}) exceeds the "
                   f"{task.train_size} training samples of TASK {task.name}: a stage "
                   f"would be empty")
    per_stage = stage_samples(task, scenario) if not out else 0
    if per_stage and task.batch_size > per_stage:
        out.append(f"TASK {task.name}: a batch of {task.batch_size} is more than a stage's "
                   f"{per_stage} samples")
    return out


def dataset_problems(task: Task, data: Any) -> list[str]:
    """How a loaded dataset differs from what its task declares (one phrase each)."""
    import numpy as np

    if not isinstance(data, Dataset):
        return [f"load_data returned a {type(data).__name__}, not a Dataset"]
    out = []
    sizes = {"train": task.train_size, "test": task.test_size}
    for part, size in sizes.items():
        x, y = getattr(data, f"x_{part}"), getattr(data, f"y_{part}")
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            out.append(f"x_{part} and y_{part} must be numpy arrays")
            continue
        if x.shape != (size, *task.input_shape):
            out.append(f"x_{part} has shape {x.shape}, the task declares "
                       f"{(size, *task.input_shape)}")
        if x.dtype != np.dtype(task.x_dtype):
            out.append(f"x_{part} is {x.dtype}, the task declares {task.x_dtype}")
        elif x.dtype == np.float32 and x.size and not np.all(np.isfinite(x)):
            out.append(f"x_{part} holds values that are not finite")
        labels = task.label_dtype
        if y.shape != (size,) or y.dtype != np.dtype(labels):
            out.append(f"y_{part} is {y.dtype} of shape {y.shape}, the task needs {labels} "
                       f"of shape {(size,)}")
        elif y.size and int(y.max()) >= task.num_classes:
            out.append(f"y_{part} holds the label {int(y.max())}, outside 0.."
                       f"{task.num_classes - 1}")
    return out


def model_problems(task: Task, keras: Any) -> list[str]:
    """What is wrong with the model a task builds (Keras imported and seeded)."""
    import numpy as np

    try:
        model = task.build_model(keras)
    except Exception as exc:  # the user's code: any failure is the task's problem
        return [f"build_model failed: {type(exc).__name__}: {exc}"]
    if not isinstance(model, keras.Model):
        return [f"build_model returned a {type(model).__name__}, not a Keras model"]
    try:
        out = model(np.zeros((2, *task.input_shape), np.float32), training=False)
    except Exception as exc:
        return [f"the model does not take inputs of shape {task.input_shape}: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]
    shape = tuple(int(d) for d in out.shape)
    if shape != (2, task.num_classes):
        return [f"the model maps a batch of 2 inputs to shape {shape}, not "
                f"(2, {task.num_classes}) class probabilities"]
    if not model.trainable_variables:
        return ["the model has no trainable weights"]
    return []
