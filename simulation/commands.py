"""The commands an installed copy puts on PATH (pyproject.toml's ``[project.scripts]``):
``pot-sim`` is ``python main.py`` and ``pot-sweep`` is ``python -m simulation.sweep``.

This module is light to import on purpose: a command first makes SIGINT and SIGTERM end
it quietly, and only then loads the simulator, whose imports take a while.
"""

from __future__ import annotations

import signal


def _exit_before_start(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def exit_on_signals_until_the_run_starts() -> None:
    """Until the run installs its own handlers nothing has started, so a SIGINT or
    SIGTERM simply ends the command (exit 130 / 143) instead of printing a
    KeyboardInterrupt traceback from the middle of an import."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_before_start)


def pot_sim() -> int:
    exit_on_signals_until_the_run_starts()
    from simulation.cli import main

    return main(prog="pot-sim")


def pot_sweep() -> int:
    # The sweep's usage, error and resume lines name the command it was started by.
    from simulation.experiments import sweep

    sweep.PROG = "pot-sweep"
    from simulation.sweep import main

    return int(main())
