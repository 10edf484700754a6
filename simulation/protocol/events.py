"""The event log's records: what one party did at one tick (EVENT_LOG_MB).

An employee (and the employer's light client) notes an ``Event`` for every message it
sends, forwards, accepts or rejects, every block it appends or holds as an orphan and
every move of its tip, and the users one for every transaction they send, when the
scenario asks for the log; the backends carry the events to the run's one log writer,
which writes them as JSON lines (``to_line``), one object per line, into the run
folder's events.jsonl. The run's replay page reads that file.

Schema (version ``SCHEMA``). Every event has ``tick``, ``party`` (E0, E1, ...,
employer, or users: only ``sent`` TX) and ``kind`` (an ``EventKind``); the other keys
appear only where they apply:

- ``message``: the message's kind (TD, BH, SS, WB, TX, RQ; ``??`` for bytes that did not
  parse, ``frame`` for an adversary's raw frame);
- ``hash``: the first 10 hex digits of the message's hash, or of the block's (appended,
  orphan, tip, reorganised), as the text log shows them;
- ``author``: who signed a received message (the peer that delivered it may have only
  forwarded it), or the user account (U0, U1, ...) that signed a transaction the users
  sent; ``to``: the one party a message was sent to (catch-up);
- ``reason``: why a message was rejected (a ``protocol.reasons.Reason`` or the
  decoder's own words);
- ``height``, ``parent``, ``trainer``, ``roy``, ``transactions``: a block's (appended,
  orphan, and sent or received blocks and headers carry ``height``);
- ``want``: the block a request asks for; ``abandoned``: the blocks a reorganisation
  took off the chain, tip first; ``size``: the bytes of a raw frame.

The log writer adds a first line ``{"kind": "begin", "schema": ..., "limit_bytes": ...}``
and a last one, ``{"kind": "end", "events": N}``, which says ``"cut": true``,
``"complete_through_tick"`` and ``"dropped"`` when the log reached EVENT_LOG_MB and the
events after were left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from simulation.protocol.encoding import DecodeError

SCHEMA = 1
FILE_NAME = "events.jsonl"
BEGIN, END = "begin", "end"  # the kinds of the log writer's first and last lines


class EventKind(StrEnum):
    SENT = "sent"  # its own message, to every peer or (``to``) to one party
    FORWARDED = "forwarded"  # an accepted message relayed on to its peers (peer graph)
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"  # a copy of a message it holds, dropped unread (peer graph)
    APPENDED = "appended"  # a block entered its tree
    ORPHAN = "orphan"  # a block held until its parent arrives
    TIP = "tip"  # the block it builds on now (its chain's tip)
    REORGANISED = "reorganised"  # its tip left blocks of its chain


@dataclass(frozen=True)
class Event:
    """One thing one party did at one tick; the keys are the schema's (module text)."""

    tick: int
    party: str
    kind: EventKind
    message: str = ""
    hash: str = ""
    author: str = ""
    to: str = ""
    reason: str = ""
    height: int = -1
    parent: str = ""
    trainer: str = ""
    roy: str = ""
    transactions: int = -1
    want: str = ""
    abandoned: tuple[str, ...] = ()
    size: int = -1

    def to_wire(self) -> dict[str, Any]:
        """The keys that apply (a field at its default is left out)."""
        wire: dict[str, Any] = {"tick": self.tick, "party": self.party,
                                "kind": str(self.kind)}
        for f in fields(self)[3:]:
            value = getattr(self, f.name)
            if value != f.default:
                wire[f.name] = list(value) if isinstance(value, tuple) else value
        return wire

    def to_line(self) -> str:
        return json.dumps(self.to_wire(), separators=(",", ":"))

    @classmethod
    def from_wire(cls, wire: Any) -> Event:
        """The event of ``to_wire``'s form; DecodeError says what is wrong."""
        if not isinstance(wire, dict):
            raise DecodeError("event: must be a map")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(wire) - set(known))
        if unknown:
            raise DecodeError(f"event: unknown key {unknown[0]!r}")
        values: dict[str, Any] = {}
        for name, f in known.items():
            if name not in wire:
                if name in ("tick", "party", "kind"):
                    raise DecodeError(f"event: {name} is missing")
                continue
            value = wire[name]
            expected = int if name in ("tick", "height", "transactions", "size") else \
                list if name == "abandoned" else str
            if type(value) is not expected or (
                    expected is list and not all(isinstance(v, str) for v in value)):
                raise DecodeError(f"event: {name} must be {f.type}")
            values[name] = tuple(value) if expected is list else value
        try:
            values["kind"] = EventKind(values["kind"])
        except ValueError:
            raise DecodeError(f"event: unknown kind {values['kind']!r}") from None
        return cls(**values)
