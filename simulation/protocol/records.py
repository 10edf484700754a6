"""Records that cross a boundary beside the protocol's messages: what a party tells the
driver after each tick. Each is a frozen dataclass with ``to_wire`` (the plain CBOR-able
form the pipes and Ray carry, as canonical CBOR) and ``from_wire``, which checks the form
and raises ``DecodeError`` with what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulation.protocol.encoding import DecodeError


def _int(wire: dict[str, Any], name: str, record: str) -> int:
    value = wire.get(name)
    if type(value) is not int:
        raise DecodeError(f"{record}: {name} must be an integer")
    return value


def _bytes(wire: dict[str, Any], name: str, record: str) -> bytes:
    value = wire.get(name)
    if not isinstance(value, bytes):
        raise DecodeError(f"{record}: {name} must be bytes")
    return value


def _bytes_or_none(wire: dict[str, Any], name: str, record: str) -> bytes | None:
    return None if wire.get(name) is None else _bytes(wire, name, record)


@dataclass(frozen=True)
class Status:
    """An employee's chain after a tick: the driver ends the run when every live honest
    employee has the same ``anchor``."""

    height: int  # of its tip
    tip: bytes  # the tip's block hash
    # Its canonical block at height TARGET_BLOCKCHAIN_LENGTH - 1 (None: chain too short).
    anchor: bytes | None

    def to_wire(self) -> dict[str, Any]:
        return {"height": self.height, "tip": self.tip, "anchor": self.anchor}

    @classmethod
    def from_wire(cls, wire: Any) -> Status:
        if not isinstance(wire, dict) or set(wire) != {"height", "tip", "anchor"}:
            raise DecodeError("status: not a map of height, tip and anchor")
        return cls(_int(wire, "height", "status"), _bytes(wire, "tip", "status"),
                   _bytes_or_none(wire, "anchor", "status"))
