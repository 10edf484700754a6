"""Records that cross a boundary beside the protocol's messages: what an employee tells
the driver after each tick (``Status``) and at the end of the run (``EmployeeReport``).
Each is a frozen dataclass with ``to_wire`` (the plain CBOR-able form the pipes and Ray
carry, as canonical CBOR) and ``from_wire``, which checks the form and raises
``DecodeError`` with what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

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


def _int_or_none(wire: dict[str, Any], name: str, record: str) -> int | None:
    return None if wire.get(name) is None else _int(wire, name, record)


T = TypeVar("T")


def _items(wire: dict[str, Any], name: str, record: str, item: Callable[[Any], T],
           what: str) -> tuple[T, ...]:
    """A list field, each item read by ``item`` (which raises on a wrong shape)."""
    value = wire.get(name)
    if not isinstance(value, list):
        raise DecodeError(f"{record}: {name} must be a list")
    try:
        return tuple(item(v) for v in value)
    except (TypeError, ValueError, KeyError, IndexError):
        raise DecodeError(f"{record}: {name} must be a list of {what}") from None


def _counts(wire: dict[str, Any], name: str, record: str) -> dict[str, int]:
    value = wire.get(name)
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and type(n) is int for k, n in value.items()):
        raise DecodeError(f"{record}: {name} must map texts to integers")
    return dict(value)


def _pair(kinds: tuple[Any, Any]) -> Callable[[Any], tuple[Any, Any]]:
    def read(value: Any) -> tuple[Any, Any]:
        if not (isinstance(value, list) and len(value) == 2
                and isinstance(value[0], kinds[0]) and isinstance(value[1], kinds[1])):
            raise ValueError(value)
        return value[0], value[1]
    return read


def _of(kind: Any) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(value)
        return value
    return read


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


@dataclass(frozen=True)
class ChainEntry:
    """A block of an employee's canonical chain, genesis first. Party indices are
    employees' (-1: a key no employee holds); genesis has no trainer, Roy or secret."""

    height: int
    hash: bytes
    tick: int
    trainer: int | None = None  # the header's author
    roy: int | None = None  # the block's author
    transactions: tuple[bytes, ...] = ()  # their hashes, in block order
    payouts: tuple[tuple[bytes, int], ...] = ()  # (account, coins)
    declarations: int = 0  # the header's training declarations
    secret: bytes | None = None  # the training secret the header revealed

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"height": self.height, "hash": self.hash, "tick": self.tick}
        if self.trainer is not None:
            wire.update(trainer=self.trainer, roy=self.roy,
                        transactions=list(self.transactions),
                        payouts=[[a, n] for a, n in self.payouts],
                        declarations=self.declarations, secret=self.secret)
        return wire

    @classmethod
    def from_wire(cls, wire: Any) -> ChainEntry:
        if not isinstance(wire, dict):
            raise DecodeError("chain entry: not a map")
        name = "chain entry"
        base = (_int(wire, "height", name), _bytes(wire, "hash", name),
                _int(wire, "tick", name))
        if "trainer" not in wire:
            return cls(*base)
        return cls(*base, _int(wire, "trainer", name), _int(wire, "roy", name),
                   _items(wire, "transactions", name, _of(bytes), "hashes"),
                   _items(wire, "payouts", name, _pair((bytes, int)), "[account, coins]"),
                   _int(wire, "declarations", name), _bytes(wire, "secret", name))


@dataclass(frozen=True)
class TreeEntry:
    """A block (not genesis) of an employee's block tree, canonical or not."""

    hash: bytes
    parent: bytes
    height: int
    trainer: int  # the header's author (-1: a key no employee holds)
    secret: bytes  # the training secret its header revealed
    arrived: int | None  # the tick it entered this employee's tree
    tick: int  # the block's own tick

    def to_wire(self) -> list[Any]:
        # A list, positionally: a tree holds every block, so its entries stay small.
        return [self.hash, self.parent, self.height, self.trainer, self.secret,
                self.arrived, self.tick]

    @classmethod
    def from_wire(cls, wire: Any) -> TreeEntry:
        if not isinstance(wire, list) or len(wire) != 7:
            raise DecodeError("tree entry: not a list of 7 fields")
        fields = dict(zip(("hash", "parent", "height", "trainer", "secret", "arrived",
                           "tick"), wire, strict=True))
        name = "tree entry"
        return cls(_bytes(fields, "hash", name), _bytes(fields, "parent", name),
                   _int(fields, "height", name), _int(fields, "trainer", name),
                   _bytes(fields, "secret", name), _int_or_none(fields, "arrived", name),
                   _int(fields, "tick", name))


@dataclass(frozen=True)
class EmployeeReport:
    """Everything the summary needs from one employee (or the employer's light client)
    at the end of a run."""

    index: int
    behaviour: str  # its role (config.Role)
    chain: tuple[ChainEntry, ...]  # its canonical chain, genesis first
    tree: tuple[TreeEntry, ...]  # every block it holds but genesis
    forks: int  # branch points in its tree
    equivocations: int  # second headers and blocks it saw
    fork_evidence: int  # second blocks it kept as fork candidates
    orphans: int  # blocks still waiting for their parent
    served_blocks: int  # blocks it sent in answer to block requests
    attack: dict[str, int]  # an adversary's own counts (tries, found, ...)
    sent: dict[str, int]  # messages broadcast, by kind
    sent_bytes: dict[str, int]  # encoded bytes broadcast, by kind
    accepted: dict[str, int]  # messages accepted, by kind
    rejected: dict[str, dict[str, int]]  # messages rejected, by kind and reason
    mempool: tuple[bytes, ...]  # transactions still pending, sorted
    rejected_transactions: tuple[tuple[bytes, str], ...]  # (hash, reason), sorted
    balances: tuple[tuple[bytes, int], ...]  # at its tip, by account
    secrets: tuple[bytes, ...]  # its training secret of each stage it trained
    model_hashes: tuple[bytes, ...]  # its model hash after each stage it trained
    # With real training: the test accuracy after each evaluated stage.
    accuracies: tuple[tuple[int, float], ...] | None = None
    # From the process wrapper: wall seconds, CPU seconds and samples of each stage it
    # trained (the Ray and lockstep backends do not measure them).
    stage_seconds: tuple[float, ...] | None = None
    stage_samples: tuple[int, ...] | None = None
    stage_cpu_seconds: tuple[float, ...] | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "index": self.index, "behaviour": self.behaviour,
            "chain": [b.to_wire() for b in self.chain], "forks": self.forks,
            "equivocations": self.equivocations, "fork_evidence": self.fork_evidence,
            "attack": dict(self.attack), "tree": [t.to_wire() for t in self.tree],
            "orphans": self.orphans, "served_blocks": self.served_blocks,
            "sent": dict(self.sent), "sent_bytes": dict(self.sent_bytes),
            "accepted": dict(self.accepted),
            "rejected": {k: dict(v) for k, v in self.rejected.items()},
            "mempool": list(self.mempool),
            "rejected_transactions": [[h, r] for h, r in self.rejected_transactions],
            "balances": [[a, n] for a, n in self.balances],
            "secrets": list(self.secrets), "model_hashes": list(self.model_hashes),
        }
        if self.accuracies is not None:
            wire["accuracies"] = [[s, a] for s, a in self.accuracies]
        if self.stage_seconds is not None:
            wire["stage_seconds"] = list(self.stage_seconds)
            wire["stage_samples"] = list(self.stage_samples or ())
        if self.stage_cpu_seconds is not None:
            wire["stage_cpu_seconds"] = list(self.stage_cpu_seconds)
        return wire

    @classmethod
    def from_wire(cls, wire: Any) -> EmployeeReport:
        name = "report"
        if not isinstance(wire, dict):
            raise DecodeError("report: not a map")
        behaviour = wire.get("behaviour")
        rejected = wire.get("rejected")
        if not isinstance(behaviour, str):
            raise DecodeError("report: behaviour must be text")
        if not isinstance(rejected, dict) or not all(isinstance(k, str)
                                                     for k in rejected):
            raise DecodeError("report: rejected must map kinds to reasons")
        optional: dict[str, Any] = {}
        if wire.get("accuracies") is not None:
            optional["accuracies"] = _items(wire, "accuracies", name,
                                            _pair((int, (int, float))), "[stage, accuracy]")
        if wire.get("stage_seconds") is not None:
            optional["stage_seconds"] = _items(wire, "stage_seconds", name,
                                               _of((int, float)), "seconds")
            optional["stage_samples"] = _items(wire, "stage_samples", name, _of(int),
                                               "counts")
        if wire.get("stage_cpu_seconds") is not None:
            optional["stage_cpu_seconds"] = _items(wire, "stage_cpu_seconds", name,
                                                   _of((int, float)), "seconds")
        return cls(
            index=_int(wire, "index", name), behaviour=behaviour,
            chain=_items(wire, "chain", name, ChainEntry.from_wire, "chain entries"),
            tree=_items(wire, "tree", name, TreeEntry.from_wire, "tree entries"),
            forks=_int(wire, "forks", name), equivocations=_int(wire, "equivocations", name),
            fork_evidence=_int(wire, "fork_evidence", name),
            orphans=_int(wire, "orphans", name),
            served_blocks=_int(wire, "served_blocks", name),
            attack=_counts(wire, "attack", name), sent=_counts(wire, "sent", name),
            sent_bytes=_counts(wire, "sent_bytes", name),
            accepted=_counts(wire, "accepted", name),
            rejected={k: _counts(rejected, k, "report: rejected") for k in rejected},
            mempool=_items(wire, "mempool", name, _of(bytes), "hashes"),
            rejected_transactions=_items(wire, "rejected_transactions", name,
                                         _pair((bytes, str)), "[hash, reason]"),
            balances=_items(wire, "balances", name, _pair((bytes, int)),
                            "[account, coins]"),
            secrets=_items(wire, "secrets", name, _of(bytes), "secrets"),
            model_hashes=_items(wire, "model_hashes", name, _of(bytes), "hashes"),
            **optional,
        )


@dataclass(frozen=True)
class RunResult:
    """What a backend hands the summary at the end of a run: the parties' reports and the
    network's own counts (``conductor.result_of``, completed by each backend). A run that
    ended before its network did (a signal during start-up, a failed network process)
    has only the first fields."""

    finished: bool
    reports: dict[str, Any]  # each live party's report in its wire form, by name
    ticks: int | None = None  # the last tick taken (None: stopped before tick 0)
    stopped_by: str | None = None  # "target reached", "MAX_TICKS", an interrupt ...
    interrupted: bool = False
    error: str | None = None  # why there is no network result at all
    employer: dict[str, Any] | None = None  # the light client's report (wire form)
    cut_off: dict[str, str] = field(default_factory=dict)  # party -> why
    failures: dict[str, str] = field(default_factory=dict)  # party -> its traceback
    relayed_bytes: dict[str, int] | None = None  # bytes the network relayed, by sender
    relayed: dict[str, int] | None = None  # messages relayed by sender (process backend)
    dropped: dict[str, int] = field(default_factory=dict)  # copies not delivered, by cause
    in_flight: tuple[bytes, ...] = ()  # hashes of messages still on their way
    offline_at_end: list[str] = field(default_factory=list)  # employees offline (CHURN)
    regions: dict[str, str] | None = None  # party -> region (LATENCY "regions")
    uploaded_bytes: dict[str, int] | None = None  # bytes of every copy, by sender
    peer_graph: dict[str, Any] | None = None  # TOPOLOGY's facts (None: the full mesh)
    shard_nodes: dict[str, str] | None = None  # Ray shard -> node id
    startup_seconds: float | None = None  # launch to every party ready
    run_seconds: float | None = None  # the ticks and the reports

    def to_wire(self) -> dict[str, Any]:
        wire = {f.name: getattr(self, f.name) for f in fields(self)}
        wire["in_flight"] = list(self.in_flight)
        return wire

    @classmethod
    def from_wire(cls, wire: Any) -> RunResult:
        if not isinstance(wire, dict) or not isinstance(wire.get("reports"), dict):
            raise DecodeError("result: not a map with the parties' reports")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(wire) - known)
        if unknown:
            raise DecodeError(f"result: unknown fields {unknown}")
        values = dict(wire)
        values["in_flight"] = tuple(wire.get("in_flight") or ())
        return cls(**values)
