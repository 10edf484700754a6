"""Imported once by the fork server, so every employee starts with TensorFlow loaded.

Forked employees share these pages copy-on-write: start-up drops from seconds to a
fraction of one and memory per employee falls (docs/PERFORMANCE.md). The import's own
console noise is captured and dropped; the employees log their own at DEBUG.

After the import, every object the fork server holds is moved to the garbage collector's
permanent generation (``gc.freeze()``). A forked child inherits the fork server's objects
copy-on-write, and a full collection in the child writes to the header of every object
it examines, which would copy nearly all of the inherited Python heap into each child;
frozen objects are never examined (docs/PERFORMANCE.md has the measurement).

With POT_PROFILE_DIR set in the environment (``scripts/scale_benchmark.py --profile``),
the fork server also loads ``profiling``, which measures every child; without it no
profiling code is loaded.
"""

import gc
import os
import signal

# The fork server is in the parent's process group: a Ctrl-C while it imports TensorFlow
# would end it with a traceback. Interrupts are the parent's (shutdown.py); the fork
# server ignores SIGINT from here on, and the children it forks inherit that.
signal.signal(signal.SIGINT, signal.SIG_IGN)

from simulation.ml.tf_env import configure_tf_environment, import_tensorflow_quietly  # noqa: E402

configure_tf_environment()
import_tensorflow_quietly()

# Preloaded for the children: the training modules, and the process modules with the
# protocol they import (employee, messages, encoding with cbor2 and cryptography, ...).
# Each child would otherwise import them itself: CPU time and private memory per process.
from simulation.ml import dataset, keras_training  # noqa: E402,F401
from simulation.net import employee_process, network, users_process  # noqa: E402,F401

if os.environ.get("POT_PROFILE_DIR"):
    from simulation.net import profiling  # noqa: E402

    profiling.install()


gc.collect()
gc.freeze()
