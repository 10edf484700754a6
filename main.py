"""Run a Proof-of-Training network: ``python main.py [--knob-name VALUE ...]``."""

from __future__ import annotations

import argparse
import sys

from simulation.config import ScenarioError, add_knob_arguments, scenario_from_args


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
    args = build_parser().parse_args(argv)
    try:
        scenario = scenario_from_args(args)
        from simulation.config import validated

        validated(scenario)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from simulation.runner import run

    outcome = run(scenario, results_path=args.results, quiet=args.quiet)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
