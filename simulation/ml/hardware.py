"""How TensorFlow is set up to compute as a HARDWARE profile (config.grammars names the
profiles and their computations; these are the computations a whole process needs)."""

from __future__ import annotations

# Environment variables TensorFlow reads at import: such an employee starts in a fresh
# process, not from the fork server ...
TF_ENVIRONMENT_OF_COMPUTATION = {"onednn": {"TF_ENABLE_ONEDNN_OPTS": "1"}}
# ... and TensorFlow's intra-op thread count (set before its first op; 1 otherwise).
INTRA_OP_THREADS_OF_COMPUTATION = {"cpu-4threads": 4}
