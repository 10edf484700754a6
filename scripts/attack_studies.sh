#!/usr/bin/env bash
# The poisoning threshold against the strongest attacker we could write (issue 17), beside
# the plain poisoned one, 11 employees, 0..8 attackers, 20 seeds, hash trainer; results
# in docs/studies/<name>/ (runs.csv, summary.csv, plots), then the figure
# docs/studies/attack_threshold.png (python scripts/threshold_figure.py --attack).
# Each sweep resumes where it stopped when run again.
set -euo pipefail
cd "$(dirname "$0")/.."
sweep() { python -m simulation.sweep --jobs 2 --quiet --trainer hash --seeds 20 "$@"; }

# The hardened protocol (every rule in force): the plain poisoned coalition and the
# poisoned grinder (poisoned training plus every grinding the rules allow).
sweep --out docs/studies/poisoning_hardened --set ADVERSARIES=poisoned:0..8
sweep --out docs/studies/grinder_hardened --set ADVERSARIES=poisoned-grinder:0..8
# The same grinder against the protocol before the rules (OPEN_RULES=all), and against
# the hardened protocol with only the grinding rules open (employee keys only: members,
# and everything else, in force).
sweep --out docs/studies/grinder_open --open-rules all \
    --set ADVERSARIES=poisoned-grinder:0..8
sweep --out docs/studies/grinder_keys_only --open-rules draw,lottery-kernel,tick-window \
    --set ADVERSARIES=poisoned-grinder:0..8
