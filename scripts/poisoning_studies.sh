#!/usr/bin/env bash
# The poisoning studies of the README, one sweep each (about 80 minutes on 2 cores).
# Each resumes where it stopped when run again; results land in docs/studies/<name>/
# (runs.csv, summary.csv, plots; the per-run files in runs/ are not committed).
# Measured under the protocol before the hardening rules: --open-rules all runs that
# protocol bit for bit (see scripts/attack_studies.sh for the hardened threshold).
set -euo pipefail
cd "$(dirname "$0")/.."
sweep() { python -m simulation.sweep --jobs 2 --quiet --open-rules all "$@"; }

# 11 employees, 0..8 poisoned, EMPLOYER_CONFIDENCE 1, 3 (default) and 6, hash trainer.
sweep --out docs/studies/poisoning_hash --trainer hash --seeds 20 \
    --set ADVERSARIES=poisoned:0..8 --set EMPLOYER_CONFIDENCE=1,3,6
# Network size: 5 and 21 employees (counts are absolute, so one sweep per size).
sweep --out docs/studies/employees_5 --trainer hash --seeds 20 \
    --set EMPLOYEES_NUM=5 --set ADVERSARIES=poisoned:0..4
sweep --out docs/studies/employees_21 --trainer hash --seeds 10 \
    --set EMPLOYEES_NUM=21 --set ADVERSARIES=poisoned:0..14..2
# Real Keras training: the threshold and the accuracy the employer receives.
sweep --out docs/studies/poisoning_keras --seeds 5 --set ADVERSARIES=poisoned:0..8
sweep --out docs/studies/poison_rate_keras --seeds 5 \
    --set POISON_RATE=0.1,0.5,1.0 --set ADVERSARIES=poisoned:3..7..2
# POISON_RATE with the hash trainer: does the share of relabelled samples move the threshold?
sweep --out docs/studies/poison_rate_hash --trainer hash --seeds 20 \
    --set POISON_RATE=0.1,0.5,1.0 --set ADVERSARIES=poisoned:3..7
