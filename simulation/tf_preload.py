"""Imported once by the fork server, so every employee starts with TensorFlow loaded.

Forked employees share these pages copy-on-write: start-up drops from seconds to a
fraction of one and memory per employee falls (see FINDINGS.md). The import's own
console noise is captured and dropped; the employees log their own at DEBUG.
"""

from .tf_env import configure_tf_environment, import_tensorflow_quietly

configure_tf_environment()
import_tensorflow_quietly()

import gc  # noqa: E402

from . import dataset, keras_training  # noqa: E402,F401  (preloaded for the children)

gc.collect()
gc.freeze()
