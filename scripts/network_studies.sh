#!/usr/bin/env bash
# The network studies of the README (issue 8): stale rate, propagation and finality
# against mean latency and against block size, with 11 and 51 employees, hash trainer,
# 10 seeds per point (about 25 minutes on 2 cores). Each sweep resumes where it stopped
# when run again; results land in docs/studies/<name>/, the figure in
# docs/studies/network.png (scripts/network_figure.py).
# Measured under the protocol before the hardening rules: --open-rules all runs that
# protocol bit for bit (studies/attacks.toml has the hardened threshold).
set -euo pipefail
cd "$(dirname "$0")/.."
sweep() { python -m simulation.sweep --jobs 2 --quiet --open-rules all --trainer hash --seeds 10 "$@"; }
# 51 employees try the lotteries 51/11 times as often; these coinstakes keep the expected
# declarations and headers per tick of the whole network as with 11 (difficulty scaled
# with the network, as Bitcoin rescales its target), so the sizes compare at one block rate.
TD51=$(python -c 'print(2**252 * 11 // 51)')
BH51=$(python -c 'print(2**251 * 11 // 51)')
big=(--employees-num 51 --td-coinstake "$TD51" --bh-coinstake "$BH51")
# Mean latency 1, 2, 4, 8, 16 ticks: uniform:1:(2m-1); no bandwidth limit.
latencies=uniform:1:1,uniform:1:3,uniform:1:7,uniform:1:15,uniform:1:31
sweep --out docs/studies/latency_11 --set LATENCY=$latencies
sweep --out docs/studies/latency_51 "${big[@]}" --set LATENCY=$latencies
# Block size: up to 0, 10, 20, 40 transactions per block (users issue one per tick, so a
# block rarely finds more), SimBlock regions, 8,000 bytes per tick of upload per party.
sizes=(--latency regions --bandwidth 8000 --max-transactions-num 2000)
sweep --out docs/studies/block_size_11 "${sizes[@]}" --set MAX_BLOCK_TRANSACTIONS=0,10,20,40
sweep --out docs/studies/block_size_51 "${sizes[@]}" "${big[@]}" \
    --set MAX_BLOCK_TRANSACTIONS=0,10,20,40
