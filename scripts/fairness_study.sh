#!/usr/bin/env bash
# The fairness study of the README (issue 9): 11 employees on HARDWARE=mixed, the
# reference needing 0, 5, 10, 20 or 40 ticks per stage, 20 blocks, 20 seeds, hash
# trainer (about 10 minutes on 2 cores). Resumes where it stopped when run again; then
# scripts/fairness_figure.py writes docs/studies/fairness/by_factor.csv and
# docs/studies/fairness.png.
# Measured under the protocol before the hardening rules: --open-rules all runs that
# protocol bit for bit (studies/attacks.toml has the hardened threshold).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m simulation.sweep --jobs 2 --quiet --open-rules all --trainer hash --seeds 20 \
    --out docs/studies/fairness --hardware mixed --target-blockchain-length 21 \
    --set STAGE_TICKS=0,5,10,20,40
python scripts/fairness_figure.py
