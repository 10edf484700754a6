"""The users: accounts that issue signed transfers, and the process that runs them.

The logic (``Users``) is a pure state machine driven by ticks like an employee. Users
spend only what they held at genesis minus what they already sent (incoming coins are
not counted until a later version tracks the chain), so every transfer they issue is
valid at its nonce: an honest transaction should end up included or still pending.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from . import frames
from .config import Scenario
from .encoding import derive_keypair
from .ledger import Genesis
from .logs import log_to_queue
from .messages import Transaction


class Users:
    def __init__(self, scenario: Scenario, genesis: Genesis):
        self.scenario = scenario
        self.keys = [derive_keypair(scenario.seed, "user", i) for i in range(scenario.users_num)]
        self.accounts = [k.public for k in self.keys]
        self.spendable = [genesis.ledger.balance(pk) for pk in self.accounts]
        self.nonces = [0] * scenario.users_num
        self.rng = random.Random(f"PoT-users-{scenario.seed}")
        self.issued: list[dict[str, Any]] = []

    def step(self, tick: int) -> list[bytes]:
        if len(self.issued) >= self.scenario.max_transactions_num:
            return []
        if self.rng.random() >= self.scenario.transaction_probability:
            return []
        able = [i for i, coins in enumerate(self.spendable) if coins >= 1]
        if not able or len(self.accounts) < 2:
            return []
        sender = self.rng.choice(able)
        receiver = self.rng.choice([i for i in range(len(self.accounts)) if i != sender])
        amount = self.rng.randint(1, max(1, self.spendable[sender] // 4))
        tx = Transaction.create(self.keys[sender], self.accounts[receiver], amount,
                                self.nonces[sender])
        self.nonces[sender] += 1
        self.spendable[sender] -= amount
        self.issued.append({"hash": tx.hash, "sender": sender, "receiver": receiver,
                            "amount": amount, "nonce": tx.nonce, "tick": tick})
        return [tx.to_bytes()]

    def report(self) -> dict[str, Any]:
        return {"issued": self.issued}


def users_main(scenario: Scenario, genesis: Genesis, conn: Any, log_queue: Any) -> None:
    """The users process: one Users state machine driven by the network's ticks."""
    log_to_queue(log_queue)
    log = logging.getLogger("pot.users")
    users = Users(scenario, genesis)
    try:
        conn.send_bytes(frames.pack("ready", index=-1))
        while True:
            frame = frames.unpack(conn.recv_bytes(frames.MAX_CONTROL_FRAME_BYTES))
            if frame["type"] == "tick":
                outgoing = users.step(frame["t"])
                for entry in users.issued[len(users.issued) - len(outgoing):]:
                    log.info("users issued TX %s: U%d sends %d coins to U%d (nonce %d)",
                             entry["hash"].hex()[:10], entry["sender"], entry["amount"],
                             entry["receiver"], entry["nonce"])
                conn.send_bytes(frames.pack("done", t=frame["t"], out=outgoing, status={}))
            elif frame["type"] == "stop":
                conn.send_bytes(frames.pack("report", report=users.report()))
                return
    except (EOFError, BrokenPipeError, ConnectionResetError):
        log.warning("users lost their pipe to the network; exiting")
