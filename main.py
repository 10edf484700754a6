"""Run a Proof-of-Training network: ``python main.py [--knob-name VALUE ...]``."""

from __future__ import annotations

import argparse
import sys

from simulation.config import ScenarioError, add_knob_arguments, scenario_from_args
from simulation.shutdown import EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Proof of Training (PoT) network simulator. Every knob of "
                    "simulation/constants.py can be overridden for one run.",
    )
    parser.add_argument("--results", metavar="PATH",
                        help="write the run's results as JSON to PATH")
    parser.add_argument("--quiet", action="store_true",
                        help="console shows only progress lines, warnings and the summary")
    add_knob_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 the target was reached and the honest employees agree; 1 the network
    did not converge; 2 invalid scenario, unwritable output or missing MNIST (nothing
    ran); 3 the run's self-check failed (a process died or the figures do not add up);
    130 / 143 interrupted by SIGINT / SIGTERM (partial results, marked as such)."""
    args = build_parser().parse_args(argv)
    from simulation.runner import RunAborted, run

    try:
        scenario = scenario_from_args(args)
        outcome = run(scenario, results_path=args.results, quiet=args.quiet)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunAborted as exc:
        print(f"error: {exc.line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
