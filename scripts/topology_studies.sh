#!/usr/bin/env bash
# The peer-graph studies of the README (issue 20), on the in-process backend (BACKEND
# lockstep, hash trainer): who is fooled when the employer hears only its peers, and how
# blocks spread over a peer graph. Each sweep resumes where it stopped when run again;
# results land in docs/studies/<name>/; scripts/topology_table.py prints the README's
# tables from them. About 45 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
sweep() { "$PY" -m simulation.sweep --jobs 2 --quiet --trainer hash --backend lockstep "$@"; }
# With N employees the lotteries are tried N/11 times as often; these coinstakes keep the
# network's declarations and headers per tick as with 11 (as scripts/network_studies.sh).
scaled() { echo --td-coinstake "$("$PY" -c "print(2**252 * 11 // $1)")" \
                --bh-coinstake "$("$PY" -c "print(2**251 * 11 // $1)")"; }
# The employer's exposure: poisoned employees 1..6 of 11 (6 is a majority) against the
# employer's number of peers (0: every employee) and its fork choice, with the adversaries
# placed at random or in the employer's peer slots (an eclipse), on random:4.
sweep --out docs/studies/employer_peers_11 --topology random:4 --seeds 10 \
    --set ADVERSARIES=poisoned:1..6 --set EMPLOYER_PEERS=1,2,4,8,0 \
    --set EMPLOYER_FORK_CHOICE=longest,declarers
sweep --out docs/studies/eclipse_11 --topology random:4 --seeds 10 \
    --adversary-placement employer \
    --set ADVERSARIES=poisoned:1..6 --set EMPLOYER_PEERS=1,2,4,8 \
    --set EMPLOYER_FORK_CHOICE=longest,declarers
# The full mesh on the same points, as the baseline (EMPLOYER_PEERS 0, nothing relayed).
sweep --out docs/studies/employer_full_11 --seeds 10 \
    --set ADVERSARIES=poisoned:4..6 --set EMPLOYER_FORK_CHOICE=longest,declarers
# The same at 51 employees on random:8 (26 is a majority), 5 seeds.
# shellcheck disable=SC2046
sweep --out docs/studies/employer_peers_51 --topology random:8 --seeds 5 \
    --employees-num 51 $(scaled 51) \
    --set ADVERSARIES=poisoned:5,poisoned:15,poisoned:25,poisoned:26 \
    --set EMPLOYER_PEERS=1,2,4,8,0 --set EMPLOYER_FORK_CHOICE=longest,declarers
# shellcheck disable=SC2046
sweep --out docs/studies/eclipse_51 --topology random:8 --seeds 5 \
    --employees-num 51 $(scaled 51) --adversary-placement employer \
    --set ADVERSARIES=poisoned:5,poisoned:15,poisoned:25,poisoned:26 \
    --set EMPLOYER_PEERS=1,2,4,8 --set EMPLOYER_FORK_CHOICE=longest,declarers
# shellcheck disable=SC2046
sweep --out docs/studies/employer_full_51 --seeds 5 --employees-num 51 $(scaled 51) \
    --set ADVERSARIES=poisoned:25,poisoned:26 --set EMPLOYER_FORK_CHOICE=longest,declarers
# Propagation over the graph against the full mesh, without and with training time per
# stage (STAGE_TICKS 5), at 51 employees (10 seeds) and 201 (3 seeds).
topologies="TOPOLOGY=full;random:4;random:8;random:16;bitcoin"
# shellcheck disable=SC2046
sweep --out docs/studies/topology_51 --seeds 10 --employees-num 51 $(scaled 51) \
    --set "$topologies" --set STAGE_TICKS=0,5
# shellcheck disable=SC2046
sweep --out docs/studies/topology_201 --seeds 3 --employees-num 201 $(scaled 201) \
    --set "$topologies" --set STAGE_TICKS=0,5
