#!/usr/bin/env bash
# The hardware study of the README (issue 9): 11 employees with real Keras training, N of
# them on hardware that computes otherwise (XLA, oneDNN) or with 4 intra-op threads,
# under the specification's exact verification, 400 ticks, 10 seeds (about 15 minutes on
# 2 cores). Resumes where it stopped when run again.
# Measured under the protocol before the hardening rules: --open-rules all runs that
# protocol bit for bit (studies/attacks.toml has the hardened threshold).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m simulation.sweep --jobs 2 --quiet --open-rules all --seeds 10 --out docs/studies/hardware \
    --max-ticks 400 \
    --set HARDWARE=xla:1,xla:3,xla:6,onednn:1,onednn:3,onednn:6,cpu-4threads:3
