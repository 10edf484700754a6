"""The control frames between processes and shards (net/frames.py): every record comes
back from its bytes as it went in, and a frame of the wrong type or with a malformed
field is refused with what is wrong."""

from __future__ import annotations

import pytest

from simulation.net import frames
from simulation.net.conductor import Answer, Window
from simulation.node.employee import LogEvent
from simulation.protocol.encoding import DecodeError, encode
from simulation.protocol.records import Status

STATUS = Status(3, b"t" * 32, b"a" * 32)
RECORDS = [
    frames.Tick(7, (b"m1", b"m2")),
    frames.StopAndReport((2, 3)),
    frames.Hello(-1),
    frames.Done(7, (b"x",), ((2, b"y"),), STATUS),
    frames.Done(7, (), (), None),
    frames.PartyReport({"issued": [], "sent": {"TD": 1}}),
    frames.PartyReport(None),
    frames.Failed("Traceback ...\nValueError: boom"),
    frames.Interrupt(2),
    frames.Result({"finished": True, "ticks": 40, "reports": {}}),
    frames.ShardWindow(Window(5, [{0: [b"a"], 2: []}, {}])),
    frames.Stepped(({0: Answer((b"o",), ((1, b"d"),), STATUS, (LogEvent(20, "E0 x"),)),
                     1: None},)),
    frames.ShardStop(((0, (1, 2)), (3, ()))),
    frames.ShardReports((("E0", {"index": 0}), ("users", {"issued": []}))),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_frame_comes_back_from_its_bytes(record):
    assert frames.read_one(record.to_wire(), type(record)) == record


def test_a_frame_of_another_type_is_refused():
    with pytest.raises(DecodeError, match="expected a done or failed frame, got 'tick'"):
        frames.read(frames.Tick(1, ()).to_wire(), frames.Done, frames.Failed)
    with pytest.raises(DecodeError, match="control frame without a type"):
        frames.read(encode({"t": 1}), frames.Tick)


@pytest.mark.parametrize(("fields", "message"), [
    ({"type": "done", "t": "1", "out": [], "to": []}, "done: t must be an integer"),
    ({"type": "done", "t": 1, "out": [1], "to": []}, "outgoing is not a list of bytes"),
    ({"type": "done", "t": 1, "out": [], "to": [[1]]}, "direct messages are not"),
    ({"type": "done", "t": 1, "out": [], "to": [], "status": {"height": 1}}, "status:"),
    ({"type": "tick", "t": 1, "msgs": "x"}, "tick: msgs is not a list of bytes"),
    ({"type": "stop", "evaluate": ["1"]}, "stop: evaluate must be a list of stages"),
    ({"type": "report", "report": [1]}, "report: report must be a map"),
    ({"type": "stepped", "steps": [[[0, [b"x"]]]]}, "malformed stepped frame"),
])
def test_a_malformed_field_is_refused_with_what_is_wrong(fields, message):
    kind = {"done": frames.Done, "tick": frames.Tick, "stop": frames.StopAndReport,
            "report": frames.PartyReport, "stepped": frames.Stepped}[fields["type"]]
    with pytest.raises(DecodeError, match=message):
        frames.read(encode(fields), kind)


def test_the_run_result_crosses_the_result_frame_and_is_checked():
    from simulation.protocol.records import RunResult

    result = RunResult(finished=True, reports={"E0": {"index": 0}}, ticks=40,
                       stopped_by="target reached", in_flight=(b"h",),
                       cut_off={"E1": "pipe closed"}, startup_seconds=1.5)
    wire = frames.read_one(frames.Result(result.to_wire()).to_wire(), frames.Result).result
    assert RunResult.from_wire(wire) == result
    with pytest.raises(DecodeError, match="unknown fields"):
        RunResult.from_wire({**wire, "surprise": 1})
    with pytest.raises(DecodeError, match="reports"):
        RunResult.from_wire({"finished": True})
