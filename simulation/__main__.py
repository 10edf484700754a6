"""``python -m simulation``: ``python main.py`` for an installed copy, which has no
main.py (the sweep starts its runs this way there)."""

import sys

from simulation.commands import exit_on_signals_until_the_run_starts

if __name__ == "__main__":
    exit_on_signals_until_the_run_starts()
    from simulation.cli import main

    sys.exit(main(prog="python -m simulation"))
