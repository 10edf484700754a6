"""Run a Proof-of-Training network: ``python main.py [--knob-name VALUE ...]`` (an
installed copy: ``pot-sim``). The command itself is ``simulation.cli``."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # First of all, before the imports below take their time: a SIGINT or SIGTERM ends
    # main.py quietly until the run installs its own handlers.
    from simulation.commands import exit_on_signals_until_the_run_starts

    exit_on_signals_until_the_run_starts()

from simulation.cli import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
