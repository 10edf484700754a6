"""Real training: a task's Keras model (by default the specification's DNN),
trained stage by stage.

Only the process layer imports this module (it pulls in TensorFlow); the protocol modules
work with the ``Trainer`` protocol of ``training`` and never import it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from simulation.ml import tf_env
from simulation.ml.stage_cache import StageCache
from simulation.ml.tasks import MNIST_DNN, Dataset, Task
from simulation.ml.training import StagedTrainer
from simulation.protocol.stages import StageResult, stage_id, stage_indices, training_secret

log = logging.getLogger(__name__)

# (stage, dataset indices of the stage, their true uint8 labels) -> labels to train on.
LabelMap = Callable[[int, np.ndarray, np.ndarray], np.ndarray]

# Weights right after each of the last SNAPSHOTS_KEPT stages are kept as they are; any
# older stage is recomputed from the nearest checkpoint of the full training state
# (weights, Adam's moments and step), kept before stage 0 and after every
# CHECKPOINT_EVERY-th stage (about 1.2 MB each for the task's DNN).
SNAPSHOTS_KEPT = 8
CHECKPOINT_EVERY = 16
# Test images classified per call in test_accuracy (10 equal batches of MNIST's 10000).
EVAL_BATCH = 1000

# Pixel value k (0..255) -> k / 255 as float32, the network's input. One table, so every
# stage converts identically (equal to float32(k) / float32(255), correctly rounded).
PIXEL_SCALE = np.arange(256, dtype=np.float32) / np.float32(255.0)


def build_model(keras):  # keras: the lazily imported module
    """The default task's network: Input 28x28 -> Flatten -> Dense 128 relu -> Dense 10
    softmax (``tasks.MNIST_DNN``).

    Weights are drawn from Keras' global seed state: call ``keras.utils.set_random_seed``
    first.
    """
    return MNIST_DNN.build_model(keras)


def weights_hash(weights: list[np.ndarray]) -> bytes:
    """SHA-256 over weight arrays in the given order (the model's ``get_weights()`` order).

    For each array, the hash is fed ``repr(tuple(int(d) for d in shape)).encode("ascii")``
    (for example ``b"(784, 128)"``) and then the array's values in C order as big-endian
    IEEE float32 (``'>f4'``). Arrays must be float32 (no rounding happens).
    """
    h = hashlib.sha256()
    for array in weights:
        array = np.asarray(array)
        if array.dtype != np.float32:
            raise TypeError(f"weights must be float32, got {array.dtype}")
        h.update(repr(tuple(int(d) for d in array.shape)).encode("ascii"))
        h.update(np.ascontiguousarray(array, dtype=">f4").tobytes())
    return h.digest()


# Keras' Adam options this module reproduces; any other value is refused (see AdamStep).
_PLAIN_ADAM = {
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
    "amsgrad": False,
}


class AdamStep:
    """Keras' Adam update (``keras.optimizers.Adam.update_step``), with fewer passes.

    Keras updates each variable with twelve element-wise TensorFlow ops, each a pass over
    the variable's values (the 784x128 kernel dominates). Per element it computes, in
    float32, with one rounding per operation::

        m   <- m + (g - m) * c1                 c1 = float32(1 - beta_1)
        v   <- v + (g * g - v) * c2             c2 = float32(1 - beta_2)
        var <- var - (m * alpha) / (sqrt(v) + epsilon)
        alpha = lr * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t),  t = iterations + 1

    This class computes exactly these operations, in the same order, with the same
    constants, but lets three of TensorFlow's fused training kernels do several of them
    per pass (their CPU kernels are Eigen expressions with one rounding per operation):

    - ``ResourceApplyGradientDescent(var=m, alpha=c1, delta=m - g)`` computes
      ``m - (m - g) * c1``, which is ``m + (g - m) * c1`` bit for bit (IEEE negation is
      exact: ``(m - g) = -(g - m)`` and ``x * c1`` changes sign with x);
    - the same for v with ``delta = v - g * g``;
    - ``ResourceApplyAdagradV2(var, accum=v, lr=alpha, epsilon, grad=m,
      update_slots=False)`` computes ``var - (m * alpha) / (sqrt(v) + epsilon)``.

    The scalar alpha is computed once per step instead of once per variable (same ops on
    the same values). TensorFlow's fused Adam kernel (``ResourceApplyAdam``) cannot be
    used: it forms ``1 - beta_1`` in float32, and no float32 beta_1 gives Keras'
    float32(1 - 0.9) that way. The equality with Keras is a test
    (tests/test_keras_training.py compares whole stages with ``train_on_batch``).

    The hyper-parameters are read from ``keras.optimizers.Adam()``'s configuration, so
    they are Keras' defaults by construction (``learning_rate`` may replace its own).
    Call ``apply`` inside a ``tf.function``.
    """

    def __init__(self, tf, keras, variables, learning_rate: float | None = None):
        options = {} if learning_rate is None else {"learning_rate": learning_rate}
        config = keras.optimizers.Adam(**options).get_config()
        unsupported = {k: config.get(k) for k, v in _PLAIN_ADAM.items() if config.get(k) != v}
        if unsupported:
            raise ValueError(f"AdamStep reproduces plain Adam only, not {unsupported}")
        self._tf = tf
        self.variables = list(variables)
        self.config = config
        f32 = tf.float32
        self._lr = tf.constant(config["learning_rate"], f32)
        self._beta_1 = tf.constant(config["beta_1"], f32)
        self._beta_2 = tf.constant(config["beta_2"], f32)
        # Keras multiplies by the Python floats 1 - beta, converted to float32.
        self._c1 = tf.constant(1 - config["beta_1"], f32)
        self._c2 = tf.constant(1 - config["beta_2"], f32)
        self._epsilon = tf.constant(config["epsilon"], f32)
        # Keras' optimizer variables: an int64 step counter, and m and v per variable.
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.m = [tf.Variable(tf.zeros(v.shape, f32), trainable=False, name="m")
                  for v in self.variables]
        self.v = [tf.Variable(tf.zeros(v.shape, f32), trainable=False, name="v")
                  for v in self.variables]

    def apply(self, gradients) -> None:
        """One Adam step on every variable (gradients in the order of ``variables``)."""
        tf = self._tf
        raw = tf.raw_ops
        step = tf.cast(self.iterations + 1, tf.float32)
        beta_1_power = tf.pow(self._beta_1, step)
        beta_2_power = tf.pow(self._beta_2, step)
        alpha = self._lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        for gradient, variable, m, v in zip(gradients, self.variables, self.m, self.v,
                                            strict=True):
            raw.ResourceApplyGradientDescent(var=m.handle, alpha=self._c1, delta=m - gradient)
            raw.ResourceApplyGradientDescent(var=v.handle, alpha=self._c2,
                                             delta=v - tf.square(gradient))
            raw.ResourceApplyAdagradV2(var=variable.handle, accum=v.handle, lr=alpha,
                                       epsilon=self._epsilon, grad=m.read_value(),
                                       update_slots=False)
        self.iterations.assign_add(1)


class SgdStep:
    """Plain stochastic gradient descent, ``var <- var - lr * g`` in float32 (TensorFlow's
    ResourceApplyGradientDescent), for a task whose optimizer is "sgd"."""

    def __init__(self, tf, variables, learning_rate: float | None = None):
        self._tf = tf
        self.variables = list(variables)
        self._lr = tf.constant(0.001 if learning_rate is None else learning_rate, tf.float32)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.m: list[Any] = []  # no moments: the training state is the weights and the step
        self.v: list[Any] = []

    def apply(self, gradients) -> None:
        for gradient, variable in zip(gradients, self.variables, strict=True):
            self._tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=self._lr,
                                                          delta=gradient)
        self.iterations.assign_add(1)


def _import_keras(intra_op_threads: int) -> tuple[Any, Any]:
    """TensorFlow and Keras, imported quietly and limited to ``intra_op_threads``."""
    captured = tf_env.import_tensorflow_quietly()
    if captured:
        log.debug("TensorFlow import wrote to stderr:\n%s", captured.rstrip())
    tf_env.limit_tf_threads(intra_op_threads)
    import keras
    import tensorflow as tf

    return tf, keras


def training_function(tf: Any, keras: Any, model: Any, adam: AdamStep | SgdStep,
                      weights: list[Any], jit_compile: bool,
                      input_shape: tuple[int, ...] = (28, 28), batch_size: int = 1) -> Any:
    """The tf.function that trains one stage: ``(x, y) -> (per-sample losses, weights
    after the stage)``, one optimizer step per sample, in order; with a ``batch_size``
    above 1, one step per batch of that many consecutive samples (the last batch may be
    smaller), each sample's loss taken under the weights its batch is trained from."""
    if batch_size > 1:
        return _batch_training_function(tf, keras, model, adam, weights, jit_compile,
                                        input_shape, batch_size)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    variables = model.trainable_variables

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, *input_shape], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ],
        # XLA changes the float results (docs/DETERMINISM.md): only the "xla" profile
        # (HARDWARE) compiles with it, to be an honest employee that diverges.
        jit_compile=jit_compile,
        # No AutoGraph: the loop is an explicit tf.while_loop. Converting this function
        # and what it calls to graph code (parsing and rewriting their source) took
        # about half of the first stage's CPU time here (docs/PERFORMANCE.md).
        autograph=False,
    )
    def train_samples(x, y):
        """The stage's per-sample losses, and the weights after the stage.

        Returning the weights from the same call costs one copy per array; reading
        them afterwards through Keras (``get_weights()``, one eager op per variable)
        took longer than hashing them.
        """
        n = tf.shape(x)[0]

        def one_sample(i, losses):
            with tf.GradientTape() as tape:
                prediction = model(x[i : i + 1], training=True)
                loss = loss_fn(y[i : i + 1], prediction)
            adam.apply(tape.gradient(loss, variables))
            return i + 1, losses.write(i, loss)

        _, losses = tf.while_loop(
            lambda i, _: i < n,
            one_sample,
            [tf.constant(0), tf.TensorArray(tf.float32, size=n)],
            # One sample after the other: each step must see the previous update.
            parallel_iterations=1,
        )
        # Automatic control dependencies order these reads after the loop's updates.
        return losses.stack(), [tf.identity(w.value) for w in weights]

    return train_samples


def _batch_training_function(tf: Any, keras: Any, model: Any, adam: AdamStep | SgdStep,
                             weights: list[Any], jit_compile: bool,
                             input_shape: tuple[int, ...], batch_size: int) -> Any:
    """``training_function`` with mini-batches: the step's loss is the mean of the batch's
    per-sample losses (Keras' "sum_over_batch_size")."""
    per_sample = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    variables = model.trainable_variables

    @tf.function(
        input_signature=[tf.TensorSpec([None, *input_shape], tf.float32),
                         tf.TensorSpec([None], tf.int32)],
        jit_compile=jit_compile, autograph=False)
    def train_batches(x, y):
        n = tf.shape(x)[0]
        steps = (n + batch_size - 1) // batch_size

        def one_batch(i, losses):
            start = i * batch_size
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            with tf.GradientTape() as tape:
                batch_losses = per_sample(yb, model(xb, training=True))
                loss = tf.reduce_mean(batch_losses)
            adam.apply(tape.gradient(loss, variables))
            return i + 1, losses.write(i, batch_losses)

        _, losses = tf.while_loop(
            lambda i, _: i < steps, one_batch,
            [tf.constant(0), tf.TensorArray(tf.float32, size=steps, infer_shape=False,
                                            element_shape=tf.TensorShape([None]))],
            parallel_iterations=1)
        return losses.concat(), [tf.identity(w.value) for w in weights]

    return train_batches


def prediction_function(tf: Any, model: Any, input_shape: tuple[int, ...] = (28, 28)) -> Any:
    """The tf.function that classifies a batch of inputs."""

    @tf.function(
        input_signature=[tf.TensorSpec([None, *input_shape], tf.float32)],
        jit_compile=False,
        autograph=False,
    )
    def predict_classes(x):
        return tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32)

    return predict_classes


def _inputs(x: np.ndarray) -> np.ndarray:
    """A task's inputs as the network takes them: uint8 pixels k as k / 255 in float32
    (one table, as every stage converts), float32 values as they are."""
    if x.dtype == np.uint8:
        return PIXEL_SCALE[x]
    if x.dtype == np.float32:
        return x
    raise TypeError(f"inputs must be uint8 or float32, got {x.dtype}")


class KerasTrainer(StagedTrainer):
    """Trains a task's model on its data (by default the DNN on MNIST), one stage at a
    time, in one process.

    Stage s trains the samples ``stage_indices(s, per_stage, train size)`` in that order,
    one optimizer step per sample (a batch of one; per batch with the task's batch size),
    starting from the model after stage s-1. The
    per-sample loss is the sparse categorical cross-entropy of the sample in the forward
    pass of its own step, before the update (what ``model.train_on_batch`` returns), as
    float32.

    The update is Keras' Adam with its default hyper-parameters, computed by ``AdamStep``
    in fewer passes over the weights but with the same float32 operations; the equality
    with ``train_on_batch`` is tested. The weights after each of the last SNAPSHOTS_KEPT
    stages are kept (as the training graph returns them) for ``test_accuracy``; an older
    stage is replayed from a checkpoint (``weights_after``), because an employee may have
    to report on a stage long after it trained further (an honest employee re-checks a
    longer poisoned branch's declarations, so it trains far beyond its own chain).

    The constructor seeds Keras (``keras.utils.set_random_seed(tf_seed)``, which also seeds
    Python's ``random`` and numpy's global generator) and builds the model, so build the
    trainer inside the process that trains, after it started: seeding in a parent does not
    carry over to its children (docs/DETERMINISM.md).
    """

    def __init__(
        self,
        model_id: str,
        mnist: Dataset,
        tf_seed: int,
        per_stage: int,
        label_map: LabelMap | None = None,
        learning_rate: float | None = None,
        jit_compile: bool = False,
        intra_op_threads: int = 1,
        task: Task = MNIST_DNN,
        stage_cache: StageCache | None = None,
    ):
        if per_stage < 1:
            raise ValueError(f"per_stage must be >= 1, got {per_stage}")
        self.model_id = model_id
        self.per_stage = per_stage
        self.tf_seed = tf_seed
        self.task = task
        self._mnist = mnist  # the task's Dataset (MNIST for the default task)
        self._label_map = label_map
        self._train_size = len(mnist.y_train)
        self._results: list[StageResult] = []
        # stage -> weights right after it, for the last SNAPSHOTS_KEPT trained stages
        self._snapshots: OrderedDict[int, list[np.ndarray]] = OrderedDict()
        # stage -> full training state right after it (-1: before stage 0), for replays
        self._checkpoints: dict[int, list[np.ndarray]] = {}
        self.replayed_stages = 0  # stages recomputed by weights_after, for the report
        # STAGE_CACHE: stages read from, or trained and stored in, a cache shared by the
        # trainers of this line (ml.stage_cache). The TF variables then hold the state
        # after ``_live_stage`` (None: unknown), which lags behind the stages read.
        self._cache = stage_cache
        self._live_stage: int | None = -1
        self._read_state: tuple[int, list[np.ndarray]] | None = None  # the last one read

        tf, keras = _import_keras(intra_op_threads)
        keras.utils.set_random_seed(tf_seed)
        model = task.build_model(keras)
        # Keras' Adam with its default hyper-parameters (but the learning rate, if given),
        # in fewer passes (AdamStep), or plain SGD. Its variables are created now, outside
        # the tf.function.
        adam: AdamStep | SgdStep = (
            AdamStep(tf, keras, model.trainable_variables, learning_rate)
            if task.optimizer == "adam" else
            SgdStep(tf, model.trainable_variables, learning_rate))
        self._model = model
        self._adam = adam
        # get_weights() order: the order of the model hash (docs/specification.md).
        weights = list(model.weights)
        self._train_samples = training_function(tf, keras, model, adam, weights, jit_compile,
                                                task.input_shape, task.batch_size)
        self._predict_classes = prediction_function(tf, model, task.input_shape)
        # The traced graph of train_samples, taken on the first stage. Calling it directly
        # with tensors skips the tf.function's argument binding and dispatch, which cost
        # about a tenth of a stage of 10 samples here (docs/PERFORMANCE.md).
        self._train_graph: Any = None
        self._to_tensor = tf.convert_to_tensor
        # Everything one stage reads and writes: the model's weights, then Adam's state.
        self._state_variables = [*weights, *adam.m, *adam.v, adam.iterations]
        self._weight_count = len(weights)
        self._checkpoints[-1] = self._full_state()

    # --- the Trainer protocol ---------------------------------------------------------------

    def test_accuracy(self, stage: int) -> float:
        """Accuracy on the 10000 test images of the model right after ``stage``.

        Trains up to ``stage`` if needed; a stage older than the last SNAPSHOTS_KEPT
        trained ones is recomputed (``weights_after``). The images are classified in
        batches of EVAL_BATCH, converted to float32 batch by batch, so an evaluation
        needs a few MB instead of the 31 MB of float32 pixels plus the activations of all
        10000 images at once (it runs at the end of a run, when memory peaks).
        """
        weights = self.weights_after(stage)
        current = self._snapshots[len(self._results) - 1]  # the model's weights now
        try:
            self._model.set_weights(weights)
            return self.current_accuracy()
        finally:
            self._model.set_weights(current)
            if self._live_stage != len(self._results) - 1:
                self._live_stage = None  # the weights are now another stage's than Adam's

    def current_accuracy(self) -> float:
        """Accuracy on the task's test set of the model's weights as they are now."""
        x_test = self._mnist.x_test
        correct = 0
        for start in range(0, len(x_test), EVAL_BATCH):
            x = _inputs(x_test[start : start + EVAL_BATCH])
            predicted = self._predict_classes(x).numpy()
            correct += int(np.sum(predicted == self._mnist.y_test[start : start + EVAL_BATCH]))
        return correct / len(x_test)

    # --- internals --------------------------------------------------------------------------

    @property
    def stage_cache(self) -> StageCache | None:
        """STAGE_CACHE's entries this trainer reads and writes (None: off)."""
        return self._cache

    @property
    def trained_stages(self) -> int:
        """How many stages (0 .. trained_stages-1) are trained."""
        return len(self._results)

    def model_hash(self) -> bytes:
        """``weights_hash`` of the model's current weights."""
        return weights_hash(self._weights())

    def _weights(self) -> list[np.ndarray]:
        """Copies of the weights in ``get_weights()`` order (not views of TF buffers)."""
        return [np.array(w, copy=True) for w in self._model.get_weights()]

    def weights_after(self, stage: int) -> list[np.ndarray]:
        """The weights right after ``stage``, training up to it if needed.

        A stage whose snapshot was dropped is replayed from the latest checkpoint before
        it, through the same training graph on the same data: the weights come out bit
        for bit as the first time, which is checked against the stage's recorded model
        hash (a mismatch raises RuntimeError rather than reporting another model). The
        training state is restored afterwards, so later stages are not affected.
        """
        self.result(stage)
        weights = self._snapshots.get(stage)
        if weights is not None:
            return weights
        found = self._cache.load(stage) if self._cache is not None else None
        if found is not None:
            return found[1][: self._weight_count]
        start = max(s for s in self._checkpoints if s < stage)
        now = self._full_state()
        try:
            self._load_state(self._checkpoints[start])
            for s in range(start + 1, stage + 1):
                weights = self._run_stage(s)[1]
                self.replayed_stages += 1
        finally:
            self._load_state(now)
        assert weights is not None  # the loop ran: start < stage
        if weights_hash(weights) != self._results[stage].model_hash:
            raise RuntimeError(f"replaying stage {stage} from the checkpoint after stage "
                               f"{start} gave other weights than the first training")
        return weights

    def _full_state(self) -> list[np.ndarray]:
        return [np.array(v.numpy(), copy=True) for v in self._state_variables]

    def _load_state(self, state: list[np.ndarray]) -> None:
        for variable, value in zip(self._state_variables, state, strict=True):
            variable.assign(value)

    def _stage_data(self, stage: int) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(stage_indices(stage, self.per_stage, self._train_size))
        x = _inputs(self._mnist.x_train[indices])
        labels = self._mnist.y_train[indices]
        if self._label_map is not None:
            labels = np.asarray(self._label_map(stage, indices.copy(), labels.copy()))
            if labels.shape != (self.per_stage,) or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"label_map must return {self.per_stage} integer labels")
            classes = self.task.num_classes
            if labels.size and (labels.min() < 0 or labels.max() >= classes):
                raise ValueError(f"label_map returned labels outside 0..{classes - 1}")
        return x, labels.astype(np.int32)

    def _run_stage(self, stage: int) -> tuple[tuple[float, ...], list[np.ndarray]]:
        """Trains ``stage`` from the current state: its losses and the weights after it."""
        x, y = self._stage_data(stage)
        if self._train_graph is None:
            self._train_graph = self._train_samples.get_concrete_function()
        losses_t, weights_t = self._train_graph(self._to_tensor(x), self._to_tensor(y))
        losses = tuple(float(v) for v in losses_t.numpy())  # exact: float32 -> Python float
        return losses, [w.numpy() for w in weights_t]  # copies, owned by the caller

    def _train_next(self) -> None:
        stage = len(self._results)
        if self._cache is None:
            self._train(stage)
            return
        found = self._cache.load(stage)
        if found is None:
            with self._cache.training(stage):
                found = self._cache.load(stage)  # another trainer may have stored it
                if found is None:
                    self._bring_state_to(stage - 1)
                    self._train(stage)
                    self._cache.store(self._results[stage], self._full_state())
                    return
        result, state = found
        self._cache.hits += 1
        self._results.append(result)
        self._read_state = (stage, state)
        self._remember(stage, state[: self._weight_count])

    def _bring_state_to(self, stage: int) -> None:
        """Loads the full training state after ``stage`` into the variables, unless they
        hold it (after stages read from the cache they lag behind)."""
        if self._live_stage == stage:
            return
        if stage == -1:
            state = self._checkpoints[-1]
        elif self._read_state is not None and self._read_state[0] == stage:
            state = self._read_state[1]
        else:
            assert self._cache is not None  # only a cache makes the variables lag
            found = self._cache.load(stage)
            if found is None:
                raise RuntimeError(f"stage {stage} vanished from the stage cache")
            state = found[1]
        self._load_state(state)
        self._live_stage = stage

    def _train(self, stage: int) -> None:
        losses, weights = self._run_stage(stage)
        result = StageResult(
            stage=stage,
            losses=losses,
            secret=training_secret(stage_id(self.model_id, stage), losses),
            model_hash=weights_hash(weights),
        )
        self._results.append(result)
        self._live_stage = stage
        self._remember(stage, weights)
        if (stage + 1) % CHECKPOINT_EVERY == 0:
            self._checkpoints[stage] = self._full_state()

    def _remember(self, stage: int, weights: list[np.ndarray]) -> None:
        self._snapshots[stage] = weights
        while len(self._snapshots) > SNAPSHOTS_KEPT:
            self._snapshots.popitem(last=False)
