"""Scenario knobs. Edit them here, or override one for a single run with its flag:
the knob ``X_Y`` is the flag ``--x-y`` (``python main.py --help`` lists them all).

Each knob's comment (the lines directly above it) is also its ``--help`` text.
"""

# --- Network ---------------------------------------------------------------------------

# Number of employees (nodes); each one is its own OS process that trains the model.
EMPLOYEES_NUM = 11

# Number of user accounts; one users process signs and issues their transfers.
USERS_NUM = 10

# Total number of transactions the users issue over the run.
MAX_TRANSACTIONS_NUM = 100

# Probability that the users issue one transaction at a tick (until MAX_TRANSACTIONS_NUM).
TRANSACTION_PROBABILITY = 1.0

# Stakeholders drawn by follow-the-coin for each block header (K); the K-th is "Roy",
# who wraps the block.
STAKEHOLDERS_NUM = 3

# Blocks (genesis counted) every live honest employee's chain must hold to end the run.
TARGET_BLOCKCHAIN_LENGTH = 6

# Training declarations from distinct employees that a block header must carry.
EMPLOYER_CONFIDENCE = 3

# Master seed: keys, genesis balances and the users' choices all derive from it.
SEED = 1

# Ticks between a message's send tick and its delivery tick (at least 1).
NETWORK_DELAY_TICKS = 1

# Wall-clock seconds per tick (0 = as fast as possible). Pacing changes no outcome.
TICK_SECONDS = 0.0

# Per-message latency, drawn for every (sender, receiver) pair: "" (every message takes
# NETWORK_DELAY_TICKS), "constant:D", "uniform:A:B" (whole ticks A..B, equally likely),
# "lognormal:MEDIAN:SIGMA" (rounded, at least 1 tick) or "regions" (each party in one of
# six world regions, with SimBlock's 2019 Bitcoin node shares and latency table; see the
# README). Draws are a hash of SEED, sender, receiver and message number, so a run is
# reproducible.
LATENCY = ""

# Milliseconds one tick stands for in the network model: converts the "regions"
# latencies (given in ms) to ticks. Nothing else depends on it.
TICK_MILLISECONDS = 100

# Upload bandwidth of every party in encoded bytes per tick (0 = unlimited). A party
# sends its copies one after another, so a message's delay grows with its size and with
# what the sender still has to upload.
BANDWIDTH = 0

# Probability that one copy of a message (one sender, one receiver) is lost.
LOSS_PROBABILITY = 0.0

# Network splits as "GROUP|GROUP@START:END", several separated by ";": e.g.
# "0-4|5-10@100:300" cuts employees 0..4 off from 5..10 from tick 100 until tick 300.
# Employees not named, the users and the employer stay in the first group. Copies sent
# across groups during the split are lost.
PARTITIONS = ""

# Employees going offline as "EMPLOYEE@START:END,...": e.g. "3@50:120" takes employee 3
# offline from tick 50 until tick 120 (it neither acts nor receives), then it catches up.
CHURN = ""

# Who hears whom. "full": every party hears every other directly and nothing is relayed
# (the default). "random:D": every employee gets D peers (a random regular graph drawn
# from SEED). "bitcoin": every employee opens outbound links drawn from the outbound-degree
# distribution of Bitcoin nodes (Miller et al. 2015, as SimBlock uses it). "file:PATH": an
# edge list, one pair of parties per line ("E0 E3"; "employer E5" names an employer link).
# Outside "full" a party forwards what it accepted to its other peers (relay after
# validation, README), and catch-up requests go to peers. Links are two-way.
TOPOLOGY = "full"

# How many employees the employer's light client links to, drawn from SEED (0: every
# employee). Needs a TOPOLOGY other than "full".
EMPLOYER_PEERS = 0

# Where the adversaries sit: "random" (drawn among all employees from SEED) or
# "employer" (they take the employer's peer slots first, the rest drawn among the others:
# an eclipse). "employer" needs EMPLOYER_PEERS > 0 and adversaries.
ADVERSARY_PLACEMENT = "random"

# How the employer's light client picks among the chains it hears: "longest" (the most
# blocks) or "declarers" (the heaviest: each block weighs the employees whose training
# declarations its header carries, so a minority's fast branch weighs little).
EMPLOYER_FORK_CHOICE = "longest"

# The run stops at this tick if the target was not reached (and exits non-zero).
MAX_TICKS = 2000

# Ticks after its own block header without a new block before an employee may try the
# block-header lottery again for the same stage (covers a silent or crashed Roy).
ROUND_TIMEOUT_TICKS = 20

# A declaration's or header's tick may lie at most this many ticks before the
# receiver's tick when it arrives, and a block's at most this many ticks after its
# header's: nobody can search old ticks for lottery wins (rules tick-window, roy-rules).
TICK_WINDOW = 20

# At most this many training declarations in one block header (rule header-cap).
MAX_HEADER_DECLARATIONS = 64

# Hardening rules to leave open, to measure what each protects (see the README's
# protocol section): a comma list of members, tick-window, lottery-kernel, draw,
# header-cap, fork-evidence, bounded-state, personal-secrets, roy-rules, tie-break,
# stage-time, chain-id; or "all", the protocol before them (November 2026), bit for bit.
# "" = every rule in force.
OPEN_RULES = ""

# Wall-clock seconds the network waits for one party to answer a tick before it treats
# that party as dead and cuts it off.
PARTY_TIMEOUT_SECONDS = 120.0

# Wall-clock seconds after which the network stops the run (and exits non-zero).
MAX_WALL_SECONDS = 1800.0

# --- Adversaries -----------------------------------------------------------------------

# Adversarial employees as "behaviour:count,...", assigned to employee indices
# deterministically from SEED. Behaviours: poisoned (trains on poisoned labels; the
# poisoned collude by sharing the same data), lazy (does not train, makes up its
# secret), forger (sends forged signatures, commitments, lottery wins and future ticks),
# equivocator (two different headers or blocks for one round), withholder (never signs
# or wraps), spammer (malformed, unknown and oversized frames), crash (its process exits
# at CRASH_AT_TICK); and the attacks the hardening rules close: sybil (declares and
# authors through fresh keys), grinder (chooses ticks and its blocks to bias the next
# draws), poisoned-grinder (poisoned, plus every grinding the rules allow: the strongest
# poisoning attacker), flooder (floods declarations), splitter (sends each half of the
# network another block for one header), backdater (does not train; copies a revealed
# secret into a backdated declaration), junk-filler (signed messages on invented blocks),
# selfish (withholds its blocks, releases them against a rival). Empty: all honest.
ADVERSARIES = ""

# Share of each stage's training labels a poisoned employee changes (y -> (y+1) mod 10).
POISON_RATE = 0.5

# Tick at which a "crash" adversary's process exits.
CRASH_AT_TICK = 10

# Hash tries per tick of each grinding adversary (sybil, grinder, poisoned-grinder,
# flooder, selfish): lottery kernels, stakeholder draws, keys or blocks it tries. It
# bounds the search so that a run stays fast; a real attacker could try more.
GRIND_TRIES_PER_TICK = 2000

# Probability that an issued transfer is followed by a double spend (another transfer
# with the same nonce) from the same user.
DOUBLE_SPEND_PROBABILITY = 0.0

# Probability that the users re-send (replay) an already issued transaction at a tick.
REPLAY_PROBABILITY = 0.0

# --- Coins -----------------------------------------------------------------------------

# Coins each employee holds in the genesis block (its stake for follow-the-coin).
GENESIS_STAKE = 1000

# Users' genesis balances are drawn uniformly from 1..USER_MAX_GENESIS_BALANCE.
USER_MAX_GENESIS_BALANCE = 1000

# Share of the coinbase that goes to the block header's author (the trainer); the rest
# is split equally among the K stakeholders, remainder to Roy.
TRAINER_SHARE = 0.5

# At most this many transactions in one wrapped block.
MAX_BLOCK_TRANSACTIONS = 50

# --- Lottery ---------------------------------------------------------------------------

# Coinstake of training declarations: a try wins when its kernel, read as a 256-bit
# number, is below it (2**252: 4 leading zero bits, 1 in 16 per tick).
TD_COINSTAKE = 2**252

# Coinstake of block headers (2**251: 5 leading zero bits, 1 in 32 per tick).
BH_COINSTAKE = 2**251

# --- Training --------------------------------------------------------------------------

# The training task the employer delegates: a built-in one, mnist-dnn (a dense network on
# MNIST, one sample per Adam step), mnist-cnn (a small convolutional network on MNIST),
# mnist-dnn-batch32 (the dense network, mini-batches of 32) or digits-mlp (scikit-learn's
# 8x8 digits), or one of your own as PATH.py:NAME or module:NAME (examples/custom_task.py).
TASK = "mnist-dnn"

# Seed of the model's initial weights (every employee uses the same).
TF_SEED = 42

# Stages per epoch: a stage trains len(train set) // ITERATIONS_PER_EPOCH samples (unless
# the task fixes its samples per stage, as mnist-dnn-batch32 and digits-mlp do).
ITERATIONS_PER_EPOCH = 6000

# The optimizer's learning rate (0.001 is Keras' Adam default; a task may have its own,
# which another value here replaces). Part of the task: another value changes the model
# id, so every secret and model hash.
LEARNING_RATE = 0.001

# Hardware profiles of the employees, in index order, as "profile:count,...": reference
# (factor 1; also named cpu-1thread), fast (0.5), slow (2), very-slow (4), xFACTOR, or a
# profile that computes otherwise at factor 1: xla (TensorFlow's XLA compiler), onednn
# (TensorFlow's oneDNN kernels, in a process of its own), cpu-4threads (4 intra-op
# threads); XLA and oneDNN give other float results, 4 threads none here; with the hash
# trainer a measured noise model stands in; tf32 (GPU reduced-precision products) exists
# with the hash trainer only, as an assumed noise model. Employees not listed run the
# reference. "mixed" is fast:2,reference:5,slow:3,very-slow:1 scaled to EMPLOYEES_NUM. A
# factor is the time per stage relative to the reference (see STAGE_TICKS).
HARDWARE = ""

# Ticks the reference hardware needs to train one stage: an employee with factor f may
# declare (and author a header) for a stage ceil(STAGE_TICKS * f) ticks after its chain
# first reached that stage. 0 = training takes no ticks (every employee equally fast).
STAGE_TICKS = 0

# How an employee checks another's training: "exact" (as specified: the secret hashes the
# per-sample losses bit for bit, and the model hash must match) or "tolerant" (the secret
# hashes the losses rounded to multiples of TOLERANCE; the model hash is not compared).
VERIFICATION = "exact"

# The quantum of tolerant verification: losses that round to the same multiple of it
# agree. Part of the task (the model id names it).
TOLERANCE = 0.0001

# "keras" trains the task's real Keras model; "hash" is a fast TensorFlow-free stand-in
# with the same protocol behaviour (for protocol experiments; no model accuracy).
TRAINER = "keras"

# A folder for a stage cache shared by the Keras trainers of this machine ("" = off):
# employees that train the same stage the same way read it instead of training it again,
# in this run and in every run that names the same folder (studies). Results are the
# same; the run's CPU seconds then do not measure the network.
STAGE_CACHE = ""

# --- Backend ---------------------------------------------------------------------------

# Where the employees run: "process" (one OS process each, this machine), "ray" (many
# employees per Ray actor, on this machine or a cluster; needs requirements-ray.txt) or
# "lockstep" (every employee an object in this one process, TRAINER hash only: fast, for
# studies). All give the same run for the same scenario.
BACKEND = "process"

# With BACKEND "ray": "" starts a local Ray instance (127.0.0.1) for the run; "auto" or
# "HOST:PORT" joins a running cluster (started with `ray start`).
RAY_ADDRESS = ""

# With BACKEND "ray": Ray actors (shards) hosting the employees; 0 = one per CPU of the
# cluster.
RAY_SHARDS = 0

# --- Output ----------------------------------------------------------------------------

# Log file (DEBUG and up); INFO and up also go to the console.
LOG_FILE = "pot_sim.log"

# Megabytes of the run's event log, events.jsonl in the run folder: one JSON line per
# thing a party did at a tick (sent, accepted, rejected with the reason, appended, moved
# its tip), with viewer.html beside it, a page that replays the run. 0 = neither (the
# default). The log stops at this size, and its last line says so. Needs a run folder.
EVENT_LOG_MB = 0
