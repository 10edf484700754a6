"""One explicit TensorFlow environment for every process that trains.

The per-sample losses, and so the training secrets, depend on which kernels TensorFlow
picks (docs/DETERMINISM.md). Employees only agree on secrets if they all train under the same
settings, so the settings are fixed here instead of being inherited from the user's shell:

- ``configure_tf_environment()`` sets the environment variables TensorFlow reads at import;
- ``import_tensorflow_quietly()`` imports TensorFlow and Keras without letting their
  start-up chatter reach the console;
- ``limit_tf_threads()`` gives TensorFlow one intra-op and one inter-op thread.

Nothing here imports TensorFlow at module import time.
"""

from __future__ import annotations

import os
import sys
import tempfile

# The values every training process uses. They are read by TensorFlow when it is imported,
# so they must be in os.environ before the first ``import tensorflow`` of the process.
TF_ENVIRONMENT: dict[str, str] = {
    # 3 = only fatal messages from TensorFlow's C++ logging.
    "TF_CPP_MIN_LOG_LEVEL": "3",
    # CPU only, always: a GPU (if one appeared) would give other kernels and other losses.
    "CUDA_VISIBLE_DEVICES": "",
    # oneDNN custom operations OFF. TensorFlow enables them by default on x86 and warns
    # that they give "slightly different numerical results"; with them on, 562 of 1000
    # per-sample losses differed here (docs/DETERMINISM.md). We pick "0" because oneDNN chooses
    # its kernels at run time from the CPU's instruction set (AVX2, AVX-512, AMX ...),
    # which adds one more machine-dependent source of float differences, while the
    # default Eigen kernels are fixed when the wheel is built. Either value would be
    # deterministic on one machine; what matters is that every process uses the same.
    "TF_ENABLE_ONEDNN_OPTS": "0",
    # Keras 3 can run on several backends (chosen by ~/.keras/keras.json or this
    # variable); the simulator's training code is written for TensorFlow.
    "KERAS_BACKEND": "tensorflow",
}
# PYTHONHASHSEED is deliberately not set: it only takes effect when the interpreter
# starts (setting it here would change nothing for this process), and the training path
# does not depend on str/bytes hash order (no iteration over sets of strings).

# A HARDWARE profile's changes to TF_ENVIRONMENT for this whole process
# (ml.hardware.TF_ENVIRONMENT_OF_COMPUTATION), set by ``use_profile_environment`` before the
# first TensorFlow import.
_PROFILE_ENVIRONMENT: dict[str, str] = {}


# Set by the test suite (tests/conftest.py): the path of a file that names the test now
# running when it is not marked ``tf``; TensorFlow must then not be imported, here or in
# a process the test starts. A file, not the variable's value: a fork server started by
# an earlier test keeps that test's environment.
FORBIDDEN_BY_TEST = "POT_TEST_TENSORFLOW_STATE"


def tensorflow_forbidden_by() -> str | None:
    """The test not marked tf that is running now, if the test suite says so."""
    path = os.environ.get(FORBIDDEN_BY_TEST)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as state:
            text = state.read().strip()
    except OSError:
        return None
    return text or None


def use_profile_environment(changes: dict[str, str]) -> None:
    """This process trains as a HARDWARE profile that changes TF_ENVIRONMENT (e.g.
    "onednn"); call before anything imports TensorFlow."""
    _PROFILE_ENVIRONMENT.clear()
    _PROFILE_ENVIRONMENT.update(changes)
    configure_tf_environment()


def configure_tf_environment() -> None:
    """Put ``TF_ENVIRONMENT`` (with this process's profile changes) into ``os.environ``.
    Idempotent.

    Call it before TensorFlow is imported (child processes inherit the variables).
    Raises RuntimeError if TensorFlow was already imported in this process with another
    TF_ENABLE_ONEDNN_OPTS value, or Keras with another backend: setting the variables
    now would not take effect, and training would silently differ from other processes.
    """
    wanted = {**TF_ENVIRONMENT, **_PROFILE_ENVIRONMENT}
    if "tensorflow" in sys.modules:
        have = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
        want = wanted["TF_ENABLE_ONEDNN_OPTS"]
        if have != want:
            raise RuntimeError(
                f"TensorFlow was imported before configure_tf_environment() with "
                f"TF_ENABLE_ONEDNN_OPTS={have!r} (want {want!r}); call "
                "configure_tf_environment() before anything imports TensorFlow"
            )
    keras = sys.modules.get("keras")
    backend = getattr(getattr(keras, "backend", None), "backend", None)
    if callable(backend) and backend() != TF_ENVIRONMENT["KERAS_BACKEND"]:
        raise RuntimeError(f"Keras was imported with the {backend()!r} backend")
    os.environ.update(wanted)


def import_tensorflow_quietly() -> str:
    """Import ``tensorflow`` and ``keras`` with file descriptor 2 sent to a temporary file.

    TensorFlow's C++ code writes absl lines ("oneDNN custom operations are on", "Could
    not find cuda drivers ...") straight to fd 2 during the import, whatever
    TF_CPP_MIN_LOG_LEVEL says, so redirecting ``sys.stderr`` is not enough. fd 2 is
    restored afterwards, also when the import fails (the captured text is then attached
    to the exception as a note).

    fd 2 is process-wide: anything another thread writes to stderr during the import (a
    few seconds) lands in the captured text too, so import early, before such threads run.

    Calls ``configure_tf_environment()`` first. Returns the captured text, for the caller
    to log at DEBUG level; returns "" when both modules were already imported.
    """
    configure_tf_environment()
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return ""
    forbidden_by = tensorflow_forbidden_by()
    if forbidden_by:
        raise RuntimeError(f"TensorFlow imported for {forbidden_by}, a test not marked tf "
                           f"(tests/conftest.py)")
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        try:
            os.dup2(capture.fileno(), 2)
            try:
                import keras  # noqa: F401
                import tensorflow  # noqa: F401
            finally:
                sys.stderr.flush()  # Python-level writes made during the import
                os.dup2(saved_fd, 2)
        except BaseException as exc:
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            if text:
                exc.add_note("stderr during the TensorFlow import:\n" + text)
            raise
        finally:
            os.close(saved_fd)
        capture.seek(0)
        return capture.read().decode("utf-8", errors="replace")


def limit_tf_threads(intra_op: int = 1) -> None:
    """Give TensorFlow one intra-op (or ``intra_op``, a HARDWARE profile) and one
    inter-op thread.

    One thread per pool keeps the order of floating-point reductions fixed, and with many
    employee processes on few cores each process keeps to its share. Speed is not the
    reason: for the simulator's trainer, 4 processes at once on 2 cores trained at the
    same speed either way here (1.25 ms per sample with the default pools, 1.29 ms with
    one thread, medians of 8 processes; scripts/thread_benchmark.py).

    Must run before TensorFlow executes its first op (the thread pools are created then).
    A call when both pools are already set to one thread does nothing; a call after
    TensorFlow has started with other settings raises RuntimeError.
    """
    import_tensorflow_quietly()
    import tensorflow as tf

    threading = tf.config.threading
    if (
        threading.get_intra_op_parallelism_threads() == intra_op
        and threading.get_inter_op_parallelism_threads() == 1
    ):
        return
    try:
        threading.set_intra_op_parallelism_threads(intra_op)
        threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as exc:
        raise RuntimeError(
            "limit_tf_threads() was called after TensorFlow had started running ops "
            "with its default thread pools; call it before building or running anything"
        ) from exc
