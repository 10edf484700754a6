"""The rules that harden the protocol against the attacks a reviewer tries first, each
with a name so that a scenario can leave it open (OPEN_RULES) and measure what it protects.

The specification's receiver checks signatures, lotteries, parents and training, but not who may
speak, when, or what a party can choose. Each rule below closes one room an attacker had
(the adversaries in ``node.adversaries`` use it when it is open):

- ``members``: only the genesis employees' keys may declare and author headers. Fresh
  keys (Sybils) counted towards EMPLOYER_CONFIDENCE and, since the stakeholder draw
  depended on the author, were tried until the draw named only colluders.
- ``tick-window``: a declaration or header is taken live only when its tick lies at most
  TICK_WINDOW ticks before the receiver's tick: nobody searches old ticks for lottery
  wins or for a draw it likes.
- ``lottery-kernel``: the lottery kernel no longer holds the parent block's hash, which
  the parent's Roy can grind (by its choice of transactions and tick) so that colluders
  win the next round's lotteries.
- ``draw``: the stakeholders of a header are drawn from randomness nobody can choose:
  SHA-256 of (genesis, stage, slot, author), where a slot is ROUND_TIMEOUT_TICKS ticks,
  by an exponential race over the employees' stakes (each account's chance rests on its
  own stake and its own hash, not on where its coins lie in a list). One header per
  author, parent and slot; a second one is equivocation.
- ``header-cap``: at most MAX_HEADER_DECLARATIONS declarations in one header.
- ``fork-evidence``: a second block for one header is kept as a fork candidate and
  counted as evidence against its Roy, instead of being rejected for good (which let a
  Roy split the honest employees for ever by sending each half another block).
- ``bounded-state``: unknown blocks remembered and orphans held are bounded per peer
  (the oldest of that peer's entries is evicted), block requests are rate-limited per
  requester and the records of them expire.
- ``personal-secrets``: a declaration commits to a secret of its own author's, the loss
  hash chain started from (id_s, author), and a header reveals each included declarer's
  such secret. A revealed secret is then of no use to anybody else: copying it no
  longer earns the trainer's share without training.
- ``roy-rules``: Roy's block lists its transactions in the deterministic selection
  order and carries a tick at most TICK_WINDOW after its header's.
- ``tie-break``: a stalled tie moves to the tip whose header has the lowest lottery
  kernel (a value its author could not choose), not to the lowest block hash (which Roy
  grinds).
- ``stage-time``: a declaration's tick lies at least the fastest hardware's stage time
  (STAGE_TICKS x the smallest speed factor) after its parent block's tick.
- ``chain-id``: a transaction names the chain (its genesis hash), so it cannot be
  replayed on another chain or task.

``OPEN_RULES="all"`` is the protocol as it was before these rules (the runs of that
version, bit for bit: tests pin its tips).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

from simulation.config import Scenario


@dataclass(frozen=True)
class Rules:
    """Which hardening rules are in force (True) for a scenario."""

    members: bool = True
    tick_window: bool = True
    lottery_kernel: bool = True
    draw: bool = True
    header_cap: bool = True
    fork_evidence: bool = True
    bounded_state: bool = True
    personal_secrets: bool = True
    roy_rules: bool = True
    tie_break: bool = True
    stage_time: bool = True
    chain_id: bool = True

    @classmethod
    def open(cls) -> Rules:
        """Every rule left open: the protocol before the hardening."""
        return cls(**{f.name: False for f in dataclasses.fields(cls)})


@lru_cache(maxsize=64)
def rules_of(scenario: Scenario) -> Rules:
    opened = scenario.opened_rules
    return Rules(**{f.name: f.name.replace("_", "-") not in opened
                    for f in dataclasses.fields(Rules)})


def slot_of(scenario: Scenario, tick: int) -> int:
    """The draw slot of a tick: ROUND_TIMEOUT_TICKS ticks each, counted from tick 0."""
    return tick // scenario.round_timeout_ticks
