"""The mutation score per module, from the last `mutmut run` (make mutation).

    python scripts/mutation_score.py            # the table
    python scripts/mutation_score.py --list     # and every mutant that was not killed

A mutant counts as killed when a test failed on it or it timed out (it made the code
hang, which the tests noticed); survived, and "no tests" (no selected test reached the
mutated function), count against the score.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KILLED = {"killed", "timeout"}


def module_of(name: str) -> str:
    """simulation.protocol.chain.xǁBlockTreeǁlocator__mutmut_3 -> simulation.protocol.chain"""
    dotted = name.split("__mutmut_")[0]
    parts = dotted.split(".")
    return ".".join(part for part in parts[:-1])


def read_results() -> list[tuple[str, str]]:
    mutmut = Path(sys.executable).with_name("mutmut")
    done = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    rows = []
    for line in done.stdout.splitlines():
        if ": " not in line:
            continue
        name, status = line.strip().rsplit(": ", 1)
        rows.append((name, status))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the mutants not killed")
    args = parser.parse_args()
    rows = read_results()
    if not rows:
        print("no mutmut results here: run `make mutation` first", file=sys.stderr)
        return 2
    by_module: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    for name, status in rows:
        by_module[module_of(name)][status] += 1
    print(f"{'module':42} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} "
          f"{'no tests':>8} {'score':>6}")
    total: collections.Counter[str] = collections.Counter()
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        print(_line(module, counts))
    print(_line("all", total))
    if args.list:
        for name, status in rows:
            if status not in KILLED:
                print(f"{status:9} {name}")
    return 0


def _line(label: str, counts: collections.Counter[str]) -> str:
    n = sum(counts.values())
    killed = sum(counts[s] for s in KILLED)
    return (f"{label:42} {n:7d} {counts['killed']:6d} {counts['timeout']:7d} "
            f"{counts['survived']:8d} {counts['no tests']:8d} {killed / n:6.1%}")


if __name__ == "__main__":
    sys.exit(main())
