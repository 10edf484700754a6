"""``python -m simulation.sweep``: the entry point of ``simulation.experiments.sweep``."""

import sys

from simulation.experiments.sweep import main

if __name__ == "__main__":
    sys.exit(main())
