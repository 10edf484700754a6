"""The users process: one ``Users`` state machine driven by the network's ticks."""

from __future__ import annotations

import logging
from typing import Any

from simulation.config import Scenario
from simulation.net import frames
from simulation.net.logs import log_happenings, log_to_queue
from simulation.net.shutdown import ignore_interrupts, send_failure
from simulation.node.users import Users
from simulation.protocol.ledger import Genesis


def users_main(scenario: Scenario, genesis: Genesis, conn: Any, log_queue: Any) -> None:
    """The users process: one Users state machine driven by the network's ticks."""
    ignore_interrupts()
    log_to_queue(log_queue)
    log = logging.getLogger("pot.users")
    try:
        users = Users(scenario, genesis)
        conn.send_bytes(frames.Hello(-1).to_wire())
        while True:
            frame = frames.read(conn.recv_bytes(frames.MAX_CONTROL_FRAME_BYTES),
                                frames.Tick, frames.StopAndReport)
            if isinstance(frame, frames.Tick):
                before = len(users.issued)
                outgoing = users.step(frame.t)
                for entry in users.issued[before:]:
                    log.info("users issued TX %s: U%d sends %d coins to U%d (nonce %d)%s",
                             entry["hash"].hex()[:10], entry["sender"], entry["amount"],
                             entry["receiver"], entry["nonce"],
                             " (double spend)" if entry["double_spend"] else "")
                if len(outgoing) > len(users.issued) - before:
                    log.info("users replay an earlier transaction")
                if users.happenings:
                    log_happenings(users.happenings)
                conn.send_bytes(frames.Done(frame.t, tuple(outgoing), (), None).to_wire())
            elif isinstance(frame, frames.StopAndReport):
                conn.send_bytes(frames.PartyReport(users.report()).to_wire())
                return
    except (EOFError, BrokenPipeError, ConnectionResetError):
        log.warning("users lost their pipe to the network; exiting")
    except Exception:
        log.exception("the users process crashed")
        send_failure(conn)
        raise SystemExit(1) from None
