"""The real training task: the Keras DNN of PROTOCOL.md section 4, trained stage by stage.

Only the process layer imports this module (it pulls in TensorFlow); the protocol modules
work with the ``Trainer`` protocol of ``training`` and never import it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from . import tf_env
from .dataset import Mnist
from .training import StageResult, stage_id, stage_indices, training_secret

log = logging.getLogger(__name__)

# (stage, dataset indices of the stage, their true uint8 labels) -> labels to train on.
LabelMap = Callable[[int, np.ndarray, np.ndarray], np.ndarray]

NUM_CLASSES = 10
SNAPSHOTS_KEPT = 8

# Pixel value k (0..255) -> k / 255 as float32, the network's input. One table, so every
# stage converts identically (equal to float32(k) / float32(255), correctly rounded).
_PIXEL_SCALE = np.arange(256, dtype=np.float32) / np.float32(255.0)


def build_model(keras):  # keras: the lazily imported module
    """The task's network: Input 28x28 -> Flatten -> Dense 128 relu -> Dense 10 softmax.

    Weights are drawn from Keras' global seed state: call ``keras.utils.set_random_seed``
    first.
    """
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )


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


class KerasTrainer:
    """Trains the task's DNN on MNIST, one stage at a time, in one process.

    Stage s trains the samples ``stage_indices(s, per_stage, 60000)`` in that order, one
    Adam step per sample (a batch of one), starting from the model after stage s-1. The
    per-sample loss is the sparse categorical cross-entropy of the sample in the forward
    pass of its own step, before the update (what ``model.train_on_batch`` returns), as
    float32.

    The constructor seeds Keras (``keras.utils.set_random_seed(tf_seed)``, which also seeds
    Python's ``random`` and numpy's global generator) and builds the model, so build the
    trainer inside the process that trains, after it started: seeding in a parent does not
    carry over to its children (FINDINGS.md).
    """

    def __init__(
        self,
        model_id: str,
        mnist: Mnist,
        tf_seed: int,
        per_stage: int,
        label_map: LabelMap | None = None,
    ):
        if per_stage < 1:
            raise ValueError(f"per_stage must be >= 1, got {per_stage}")
        self.model_id = model_id
        self.per_stage = per_stage
        self.tf_seed = tf_seed
        self._mnist = mnist
        self._label_map = label_map
        self._train_size = len(mnist.y_train)
        self._results: list[StageResult] = []
        # stage -> weights right after it, for the last SNAPSHOTS_KEPT trained stages
        self._snapshots: OrderedDict[int, list[np.ndarray]] = OrderedDict()

        captured = tf_env.import_tensorflow_quietly()
        if captured:
            log.debug("TensorFlow import wrote to stderr:\n%s", captured.rstrip())
        tf_env.limit_tf_threads()
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(tf_seed)
        model = build_model(keras)
        optimizer = keras.optimizers.Adam()  # default hyper-parameters
        loss_fn = keras.losses.SparseCategoricalCrossentropy()
        # The optimizer's variables are created now, outside the tf.function.
        optimizer.build(model.trainable_variables)
        self._model = model

        variables = model.trainable_variables

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 28, 28], tf.float32),
                tf.TensorSpec([None], tf.int32),
            ],
            jit_compile=False,  # XLA changes the float results (FINDINGS.md)
        )
        def train_samples(x, y):
            n = tf.shape(x)[0]
            losses = tf.TensorArray(tf.float32, size=n)
            for i in tf.range(n):
                # One sample after the other: each step must see the previous update.
                tf.autograph.experimental.set_loop_options(parallel_iterations=1)
                with tf.GradientTape() as tape:
                    prediction = model(x[i : i + 1], training=True)
                    loss = loss_fn(y[i : i + 1], prediction)
                gradients = tape.gradient(loss, variables)
                optimizer.apply_gradients(zip(gradients, variables, strict=True))
                losses = losses.write(i, loss)
            return losses.stack()

        @tf.function(
            input_signature=[tf.TensorSpec([None, 28, 28], tf.float32)],
            jit_compile=False,
        )
        def predict_classes(x):
            return tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32)

        self._train_samples = train_samples
        self._predict_classes = predict_classes

    # --- the Trainer protocol ---------------------------------------------------------------

    def result(self, stage: int) -> StageResult:
        """The result of ``stage``, training every missing stage up to it first."""
        if stage < 0:
            raise ValueError(f"stage must be >= 0, got {stage}")
        while len(self._results) <= stage:
            self._train_next()
        return self._results[stage]

    def test_accuracy(self, stage: int) -> float:
        """Accuracy on the 10000 test images of the model right after ``stage``.

        Trains up to ``stage`` if needed. Stages older than the last SNAPSHOTS_KEPT trained
        ones raise ValueError (their weights are gone).
        """
        self.result(stage)
        weights = self._snapshots.get(stage)
        if weights is None:
            kept = ", ".join(str(s) for s in self._snapshots)
            raise ValueError(f"weights after stage {stage} are no longer kept (kept: {kept})")
        current = self._weights()
        x = _PIXEL_SCALE[self._mnist.x_test]
        try:
            self._model.set_weights(weights)
            predicted = self._predict_classes(x).numpy()
        finally:
            self._model.set_weights(current)
        return float(np.mean(predicted == self._mnist.y_test))

    # --- internals --------------------------------------------------------------------------

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

    def _stage_data(self, stage: int) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(stage_indices(stage, self.per_stage, self._train_size))
        x = _PIXEL_SCALE[self._mnist.x_train[indices]]
        labels = self._mnist.y_train[indices]
        if self._label_map is not None:
            labels = np.asarray(self._label_map(stage, indices.copy(), labels.copy()))
            if labels.shape != (self.per_stage,) or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"label_map must return {self.per_stage} integer labels")
            if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
                raise ValueError(f"label_map returned labels outside 0..{NUM_CLASSES - 1}")
        return x, labels.astype(np.int32)

    def _train_next(self) -> None:
        stage = len(self._results)
        x, y = self._stage_data(stage)
        losses_f32 = self._train_samples(x, y).numpy()
        losses = tuple(float(v) for v in losses_f32)  # exact: float32 -> Python float
        weights = self._weights()
        result = StageResult(
            stage=stage,
            losses=losses,
            secret=training_secret(stage_id(self.model_id, stage), losses),
            model_hash=weights_hash(weights),
        )
        self._results.append(result)
        self._remember(stage, weights)

    def _remember(self, stage: int, weights: list[np.ndarray]) -> None:
        self._snapshots[stage] = weights
        while len(self._snapshots) > SNAPSHOTS_KEPT:
            self._snapshots.popitem(last=False)
