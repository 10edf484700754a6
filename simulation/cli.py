"""One run of the network from the command line: ``python main.py``, ``pot-sim`` and
``python -m simulation`` are this module's ``main`` under three names (``prog``, which
usage and error lines show). Starting a command is ``simulation.commands``' business:
it makes a signal end the command quietly before this module's imports take their time.
"""

from __future__ import annotations

import signal
import sys
import traceback

from simulation.config import (
    FlagParser,
    ScenarioError,
    add_knob_arguments,
    scenario_from_args,
    scenario_problems,
)
from simulation.net.shutdown import EXIT_BAD_INPUT, EXIT_INTERNAL_ERROR

_EARLY_SIGNALS: list[int] = []  # SIGINT / SIGTERM received after parsing, before the run


def _record_signal(signum: int, frame: object) -> None:
    # Record only: the run reads it at its first safe point and ends as interrupted, with
    # its results marked so (a handler that raised here broke the start-up).
    _EARLY_SIGNALS.append(signum)


def build_parser(prog: str = "python main.py") -> FlagParser:
    parser = FlagParser(
        prog=prog,
        description="Proof of Training (PoT) network simulator. Every knob of "
                    "simulation/constants.py can be overridden for one run.",
    )
    parser.add_argument("--results", metavar="PATH",
                        help="write the run's results as JSON to PATH")
    parser.add_argument("--quiet", action="store_true",
                        help="console shows only progress lines, warnings and the summary")
    parser.add_argument("--run-dir", metavar="DIR",
                        help="folder for the run's results.json, a copy of the log, "
                             "scenario.json (with the command that re-runs it) and pictures "
                             "(default: runs/<YYYYmmdd-HHMMSS>-seed<SEED>, with -2, -3 ... "
                             "if that exists; '' for none)")
    parser.add_argument("--no-run-dir", action="store_true",
                        help="write no run folder (the same as --run-dir '')")
    parser.add_argument("--scenario", metavar="FILE",
                        help="a scenario file (TOML, or JSON such as a run folder's "
                             "scenario.json): its knobs replace constants.py's, the knob "
                             "flags override it")
    add_knob_arguments(parser)
    return parser


def main(argv: list[str] | None = None, prog: str = "python main.py") -> int:
    """Exit codes: 0 the target was reached and the honest employees agree; 1 the network
    did not converge; 2 invalid scenario, unwritable output or missing MNIST (nothing
    ran); 3 the run's self-check failed (a process died or the figures do not add up);
    4 the simulator failed (a bug, or the results could not be written at the end);
    130 / 143 interrupted by SIGINT / SIGTERM (partial results, marked as such)."""
    args, problems = build_parser(prog).parse_args_and_problems(argv)
    if problems:
        # With what the scenario says of the flags that did parse: every problem at once.
        problems += [line for line in scenario_problems(args) if line not in problems]
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # From here on a signal is a request to stop the run: it ends with exit 130 / 143 and,
    # with --results, a results file marked interrupted, whenever it comes.
    if _is_main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _record_signal)
    from simulation.net.shutdown import signal_point

    signal_point("parsed")
    try:
        # Inside the try: a module that fails to import is a bug of the simulator (exit
        # 4), not a run that did not converge (Python's own exit 1).
        from simulation.net.runner import RunAborted, default_run_dir, run
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print("error: the simulator failed to load (the traceback above is a bug to "
              "report); nothing ran", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    try:
        scenario = scenario_from_args(args)
        run_dir, unique = args.run_dir, False
        if args.no_run_dir:
            run_dir = None
        elif run_dir is None:
            run_dir, unique = default_run_dir(scenario.seed), True
        outcome = run(scenario, results_path=args.results, quiet=args.quiet,
                      run_dir=run_dir or None, unique_run_dir=unique,
                      early_signal=lambda: _EARLY_SIGNALS[0] if _EARLY_SIGNALS else None,
                      command=prog)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunAborted as exc:
        print(f"error: {exc.line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:  # noqa: BLE001 - a bug must not pass for "did not converge" (1)
        traceback.print_exc()
        print("error: the simulator failed (the traceback above is a bug to report); "
              "the run's figures are lost", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    return outcome.exit_code


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
