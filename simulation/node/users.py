"""The users: accounts that issue signed transfers (the process is ``net.users_process``).

``Users`` is a pure state machine driven by ticks like an employee. Users
spend only what they held at genesis minus what they already sent (incoming coins are
not counted until a later version tracks the chain), so every transfer they issue is
valid at its nonce: an honest transaction should end up included or still pending.

With EVENT_LOG_MB a step also notes an event log record (``protocol.events``) of every
transaction it sends, double spends and replays included, in ``happenings``: party
``users``, the signing account as ``author``. The records only describe the step.
"""

from __future__ import annotations

import random
from typing import Any

from simulation.config import Scenario
from simulation.protocol.encoding import derive_keypair
from simulation.protocol.events import Event, EventKind
from simulation.protocol.ledger import Genesis
from simulation.protocol.messages import TX, Transaction
from simulation.protocol.names import USERS_NAME, user_name
from simulation.protocol.rules import rules_of


class Users:
    def __init__(self, scenario: Scenario, genesis: Genesis):
        self.scenario = scenario
        self.keys = [derive_keypair(scenario.seed, "user", i) for i in range(scenario.users_num)]
        # Rule chain-id: transfers name the chain they are for.
        self.chain = genesis.hash if rules_of(scenario).chain_id else None
        self.accounts = [k.public for k in self.keys]
        self.spendable = [genesis.ledger.balance(pk) for pk in self.accounts]
        self.nonces = [0] * scenario.users_num
        self.rng = random.Random(f"PoT-users-{scenario.seed}")
        self.issued: list[dict[str, Any]] = []
        self.sent_bytes: list[bytes] = []
        self.replays = 0
        self.notes_events = scenario.event_log_mb > 0
        self.happenings: list[Event] = []  # this step's event log records
        # With the log: each sent transaction's bytes -> (short hash, signer), for replays.
        self._sent_names: dict[bytes, tuple[str, str]] = {}

    def step(self, tick: int) -> list[bytes]:
        out: list[bytes] = []
        if self.notes_events:
            self.happenings = []
        # Dishonest features draw from the PRNG only when enabled, so that an honest
        # scenario's transactions do not depend on their existence.
        replay = self.scenario.replay_probability
        if self.sent_bytes and replay > 0 and self.rng.random() < replay:
            self.replays += 1
            out.append(self.rng.choice(self.sent_bytes))  # a replay: same bytes again
            if self.notes_events:
                self._note_sent(tick, out[-1])
        if len(self.issued) >= self.scenario.max_transactions_num:
            return out
        if self.rng.random() >= self.scenario.transaction_probability:
            return out
        able = [i for i, coins in enumerate(self.spendable) if coins >= 1]
        if not able or len(self.accounts) < 2:
            return out
        sender = self.rng.choice(able)
        amount = self.rng.randint(1, max(1, self.spendable[sender] // 4))
        spent = amount
        out.append(self._issue(tick, sender, amount))
        double = self.scenario.double_spend_probability
        if (double > 0 and self.rng.random() < double
                and len(self.issued) < self.scenario.max_transactions_num):
            # A double spend: a second transfer with the same nonce. At most one can
            # ever be applied; the other must end up rejected, not lost.
            self.nonces[sender] -= 1
            second = self.rng.randint(1, max(1, self.spendable[sender] // 4))
            spent = max(spent, second)
            out.append(self._issue(tick, sender, second, double_spend=True))
        self.spendable[sender] -= spent
        return out

    def _issue(self, tick: int, sender: int, amount: int, double_spend: bool = False
               ) -> bytes:
        receiver = self.rng.choice([i for i in range(len(self.accounts)) if i != sender])
        tx = Transaction.create(self.keys[sender], self.accounts[receiver], amount,
                                self.nonces[sender], chain=self.chain)
        self.nonces[sender] += 1
        self.issued.append({"hash": tx.hash, "sender": sender, "receiver": receiver,
                            "amount": amount, "nonce": tx.nonce, "tick": tick,
                            "double_spend": double_spend})
        data = tx.to_bytes()
        self.sent_bytes.append(data)
        if self.notes_events:
            self._sent_names[data] = (tx.hash.hex()[:10], user_name(sender))
            self._note_sent(tick, data)
        return data

    def _note_sent(self, tick: int, data: bytes) -> None:
        hash_, author = self._sent_names[data]
        self.happenings.append(Event(tick, USERS_NAME, EventKind.SENT, message=TX,
                                     hash=hash_, author=author))

    def report(self) -> dict[str, Any]:
        return {"issued": self.issued, "replays": self.replays}
