"""``python -m simulation.sweep``: the entry point of ``simulation.experiments.sweep``, and
with ``--study FILE`` of ``simulation.experiments.study`` (every sweep of a study file)."""

import sys

from simulation.experiments import study, sweep


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if any(w == "--study" or w.startswith("--study=") for w in words):
        return study.main(words)
    return sweep.main(words)


if __name__ == "__main__":
    sys.exit(main())
