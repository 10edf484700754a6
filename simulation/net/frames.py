"""Control frames between the processes and shards of a run, as typed records.

Each frame is a frozen dataclass; ``to_wire`` writes it as canonical CBOR, a map with its
``type`` and its fields, like the protocol messages it carries, and ``read`` parses bytes
back into the record it expects, checking every field (``DecodeError`` says what is
wrong). Who sends what:

network -> party:   Tick, StopAndReport          party -> network:  Hello, Done, PartyReport,
parent -> network:  Interrupt                                       Failed
network -> parent:  Result
Ray driver -> shard: ShardWindow, ShardStop      shard -> driver:   Stepped, ShardReports
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from simulation.net.conductor import Answer, Window
from simulation.node.employee import LogEvent
from simulation.protocol.encoding import DecodeError, decode, encode
from simulation.protocol.events import Event
from simulation.protocol.records import Status

# A report holds a whole chain and mempool: allow more than a protocol frame.
MAX_CONTROL_FRAME_BYTES = 64 * 1024 * 1024


class Frame:
    KIND: ClassVar[str]

    def fields(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_fields(cls: type[F], frame: dict[str, Any]) -> F:
        raise NotImplementedError

    def to_wire(self) -> bytes:
        return encode({"type": self.KIND, **self.fields()})


F = TypeVar("F", bound=Frame)


def _int(frame: dict[str, Any], name: str) -> int:
    value = frame.get(name)
    if type(value) is not int:
        raise DecodeError(f"{frame['type']}: {name} must be an integer")
    return value


def _list(frame: dict[str, Any], name: str) -> list[Any]:
    value = frame.get(name)
    if not isinstance(value, list):
        raise DecodeError(f"{frame['type']}: {name} must be a list")
    return value


def _frames_of_bytes(frame: dict[str, Any], name: str, what: str) -> tuple[bytes, ...]:
    value = frame.get(name)
    if not isinstance(value, list) or not all(isinstance(m, bytes) for m in value):
        raise DecodeError(f"{what} is not a list of bytes")
    return tuple(value)


def _addressed(value: Any, what: str) -> tuple[tuple[int, bytes], ...]:
    if not isinstance(value, list) or not all(
            isinstance(d, list) and len(d) == 2 and type(d[0]) is int
            and isinstance(d[1], bytes) for d in value):
        raise DecodeError(f"{what} are not [receiver, bytes] pairs")
    return tuple((r, m) for r, m in value)


def _status(value: Any) -> Status | None:
    return None if value is None else Status.from_wire(value)


# --- Network and parties (employees, users) ------------------------------------------


@dataclass(frozen=True)
class Tick(Frame):
    """Step this tick with these deliveries."""

    KIND = "tick"
    t: int
    msgs: tuple[bytes, ...]

    def fields(self) -> dict[str, Any]:
        return {"t": self.t, "msgs": list(self.msgs)}

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> Tick:
        return cls(_int(frame, "t"), _frames_of_bytes(frame, "msgs", "tick: msgs"))


@dataclass(frozen=True)
class StopAndReport(Frame):
    """The run is over: evaluate the model after these stages, then report."""

    KIND = "stop"
    evaluate: tuple[int, ...]

    def fields(self) -> dict[str, Any]:
        return {"evaluate": list(self.evaluate)}

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> StopAndReport:
        stages = frame.get("evaluate") or []
        if not isinstance(stages, list) or not all(type(s) is int for s in stages):
            raise DecodeError("stop: evaluate must be a list of stages")
        return cls(tuple(stages))


@dataclass(frozen=True)
class Hello(Frame):
    """A party is set up and waits for its first tick."""

    KIND = "ready"
    index: int

    def fields(self) -> dict[str, Any]:
        return {"index": self.index}

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> Hello:
        return cls(_int(frame, "index"))


@dataclass(frozen=True)
class Done(Frame):
    """A party's answer to a tick: what it broadcasts, what it sends to one party each,
    and its status (None: the users)."""

    KIND = "done"
    t: int
    out: tuple[bytes, ...]
    to: tuple[tuple[int, bytes], ...]
    status: Status | None

    def fields(self) -> dict[str, Any]:
        return {"t": self.t, "out": list(self.out), "to": [[r, m] for r, m in self.to],
                "status": None if self.status is None else self.status.to_wire()}

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> Done:
        return cls(_int(frame, "t"), _frames_of_bytes(frame, "out", "outgoing"),
                   _addressed(frame.get("to", []), "direct messages"),
                   _status(frame.get("status")))


@dataclass(frozen=True)
class PartyReport(Frame):
    """A party's final report (``Employee.final_report``, ``Users.report``)."""

    KIND = "report"
    report: dict[str, Any] | None

    def fields(self) -> dict[str, Any]:
        return {"report": self.report}

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> PartyReport:
        report = frame.get("report")
        if report is not None and not isinstance(report, dict):
            raise DecodeError("report: report must be a map")
        return cls(report)


@dataclass(frozen=True)
class Failed(Frame):
    """A party's last words: the traceback of the exception it exits on."""

    KIND = "failed"
    error: str

    def fields(self) -> dict[str, Any]:
        return {"error": self.error}

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> Failed:
        return cls(str(frame.get("error", "")))


# --- Parent and network --------------------------------------------------------------


@dataclass(frozen=True)
class Interrupt(Frame):
    """The parent received this signal: stop after the current tick."""

    KIND = "interrupt"
    signal: int

    def fields(self) -> dict[str, Any]:
        return {"signal": self.signal}

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> Interrupt:
        return cls(_int(frame, "signal"))


@dataclass(frozen=True)
class Result(Frame):
    """The network's result of the run (``conductor.result_of`` and the network's own
    counts), its keys at the top level of the frame."""

    KIND = "result"
    result: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        return dict(self.result)

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> Result:
        return cls({k: v for k, v in frame.items() if k != "type"})


# --- Ray driver and shards -----------------------------------------------------------


@dataclass(frozen=True)
class ShardWindow(Frame):
    """A ``conductor.Window`` for the shard's employees."""

    KIND = "window"
    window: Window

    def fields(self) -> dict[str, Any]:
        return {"first": self.window.first,
                "ticks": [[[i, messages] for i, messages in sorted(tick.items())]
                          for tick in self.window.deliveries]}

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> ShardWindow:
        ticks = _list(frame, "ticks")
        return cls(Window(_int(frame, "first"), [{index: messages for index, messages in tick}
                                                 for tick in ticks]))


@dataclass(frozen=True)
class Stepped(Frame):
    """The shard's answers, tick by tick of the window, by employee (None: crashed)."""

    KIND = "stepped"
    steps: tuple[dict[int, Answer | None], ...]

    def fields(self) -> dict[str, Any]:
        return {"steps": [
            [[index, None if a is None else
              [list(a.outgoing), [list(d) for d in a.direct],
               None if a.status is None else a.status.to_wire(),
               [[e.level, e.text] for e in a.events],
               [e.to_wire() for e in a.happenings]]] for index, a in answers.items()]
            for answers in self.steps]}

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> Stepped:
        return cls(tuple({index: None if answer is None else Answer(
            tuple(answer[0]), _addressed(answer[1], "direct messages"), _status(answer[2]),
            tuple(LogEvent(level, text) for level, text in answer[3]),
            tuple(Event.from_wire(e) for e in answer[4]))
            for index, answer in step} for step in _list(frame, "steps")))


@dataclass(frozen=True)
class ShardStop(Frame):
    """The run is over: each of these employees evaluates after its stages, then
    reports."""

    KIND = "stop"
    evaluate: tuple[tuple[int, tuple[int, ...]], ...]

    def fields(self) -> dict[str, Any]:
        return {"evaluate": [[i, list(stages)] for i, stages in self.evaluate]}

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> ShardStop:
        return cls(tuple((i, tuple(stages)) for i, stages in _list(frame, "evaluate")))


@dataclass(frozen=True)
class ShardReports(Frame):
    """The shard's parties' reports, by name."""

    KIND = "report"
    reports: tuple[tuple[str, dict[str, Any]], ...]

    def fields(self) -> dict[str, Any]:
        return {"reports": [[name, report] for name, report in self.reports]}

    @classmethod
    def from_fields(cls, frame: dict[str, Any]) -> ShardReports:
        return cls(tuple((name, report) for name, report in _list(frame, "reports")))


def read(data: bytes, *kinds: type[Frame], max_bytes: int = MAX_CONTROL_FRAME_BYTES
         ) -> Frame:
    """The frame in ``data``, one of ``kinds``; DecodeError if it is none of them or a
    field is malformed."""
    frame = decode(data, max_bytes=max_bytes, allow_float=True)
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise DecodeError("control frame without a type")
    for kind in kinds:
        if frame["type"] == kind.KIND:
            try:
                return kind.from_fields(frame)
            except DecodeError:
                raise
            except (TypeError, ValueError, IndexError) as exc:  # a field of another shape
                raise DecodeError(f"malformed {kind.KIND} frame ({type(exc).__name__})"
                                  ) from None
    wanted = " or ".join(k.KIND for k in kinds)
    raise DecodeError(f"expected a {wanted} frame, got {frame['type']!r}"[:80])


def read_one(data: bytes, kind: type[F], max_bytes: int = MAX_CONTROL_FRAME_BYTES) -> F:
    frame = read(data, kind, max_bytes=max_bytes)
    assert isinstance(frame, kind)
    return frame
