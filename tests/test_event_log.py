"""The event log (EVENT_LOG_MB): what each party did at each tick, as JSON lines through
the one log writer. It describes the run and changes nothing in it; replayed, it gives
every party's block tree, arrival ticks, tip and counters as the party itself holds
them; it is the same from every backend; and it stops at its size with a last line that
says so."""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from simulation.config import default_scenario, problems
from simulation.net import frames, runner
from simulation.net.conductor import Answer
from simulation.net.lockstep import network_result, run_lockstep
from simulation.net.logs import (
    EventLog,
    drain,
    finish_event_log,
    log_happenings,
    start_listener,
)
from simulation.node.adversaries import assign_adversaries
from simulation.node.employee import Employee, short
from simulation.protocol.encoding import DecodeError
from simulation.protocol.events import Event, EventKind
from simulation.protocol.messages import TX, WB
from simulation.protocol.names import USERS_NAME
from simulation.protocol.records import Status
from tests.test_run_folder import main_py

# Six employees, a selfish one and a poisoned one, latencies of 1 to 5 ticks, one
# employee offline for 90 ticks: forks, reorganisations, rejections, an orphan and
# catch-up in 0.2 s of lockstep; users who double-spend and replay.
LIVELY = dict(trainer="hash", employees_num=6, adversaries="selfish:1,poisoned:1",
              latency="uniform:1:5", churn="2@30:120", seed=3, log_file="unused.log",
              double_spend_probability=0.3, replay_probability=0.2)


def lively(**changes):
    return default_scenario().replace(**{**LIVELY, **changes})


def logged_run(scenario):
    got: list[Event] = []
    run = run_lockstep(scenario, keep_events=True, on_happenings=got.extend)
    return run, got


@pytest.fixture(scope="module")
def lively_run():
    return logged_run(lively(event_log_mb=5))


def test_an_event_goes_to_its_json_form_and_back():
    event = Event(7, "E2", EventKind.REORGANISED, hash="ab" * 5, height=3,
                  abandoned=("cd" * 5, "ef" * 5))
    wire = event.to_wire()
    assert wire == {"tick": 7, "party": "E2", "kind": "reorganised", "hash": "ababababab",
                    "height": 3, "abandoned": ["cdcdcdcdcd", "efefefefef"]}
    assert Event.from_wire(json.loads(event.to_line())) == event
    # One compact line per event (the log's size bound counts these bytes).
    assert event.to_line() == ('{"tick":7,"party":"E2","kind":"reorganised","hash":'
                               '"ababababab","height":3,"abandoned":["cdcdcdcdcd","efefefefef"]}')
    for bad, says in (("tip", "^event: must be a map$"),
                      ({"party": "E0", "kind": "tip"}, "tick is missing"),
                      ({"tick": 1, "kind": "tip"}, "party is missing"),
                      ({"tick": 1, "party": "E0"}, "kind is missing"),
                      ({"tick": 1, "party": "E0", "kind": "tip", "size": "9"}, "size must be"),
                      ({"tick": 1, "party": "E0", "kind": "tip", "height": 2.0},
                       "height must be"),
                      ({"tick": 1, "party": "E0", "kind": "tip", "hash": 5}, "hash must be"),
                      ({"tick": "1", "party": "E0", "kind": "tip"}, "tick must be"),
                      ({"tick": 1, "party": "E0", "kind": "lost"}, "unknown kind"),
                      ({"tick": 1, "party": "E0", "kind": "tip", "colour": 1}, "unknown key"),
                      ({"tick": 1, "party": "E0", "kind": "tip", "abandoned": [1]},
                       "abandoned must be")):
        with pytest.raises(DecodeError, match=says):
            Event.from_wire(bad)


def test_the_log_changes_nothing_in_the_run(lively_run):
    """Same ticks, same log lines, same result with the log on and off; off, no party
    notes anything."""
    run_on, happenings = lively_run
    run_off, nothing = logged_run(lively())
    assert happenings and nothing == []
    assert run_on.ticks == run_off.ticks
    assert run_on.events == run_off.events
    wire_on, wire_off = network_result(run_on).to_wire(), network_result(run_off).to_wire()
    assert wire_on == wire_off


def _by_party(happenings):
    out = defaultdict(list)
    for e in happenings:
        out[e.party].append(e)
    return out


def _users_sends(happenings) -> list[Event]:
    return [e for e in happenings if e.party == USERS_NAME]


def _check_users_sends(users, sends: list[Event]) -> None:
    """The users' records are one ``sent`` TX per transaction they sent: the first send
    of each hash is an issued transaction (in order, at its tick, by its signer), and
    every other one a replay."""
    assert sends and all(e.kind == EventKind.SENT and e.message == TX for e in sends)
    first_sends, seen = [], set()
    for e in sends:
        if e.hash not in seen:
            seen.add(e.hash)
            first_sends.append((e.tick, e.hash, e.author))
    assert first_sends == [(i["tick"], short(i["hash"]), f"U{i['sender']}")
                           for i in users.issued]
    assert len(sends) == len(users.issued) + users.replays


def _parties(run) -> list[Employee]:
    return [e for e in run.employees if e.index not in run.crashed] + [run.employer]


def test_replaying_the_log_gives_each_partys_tree_tips_and_arrival_ticks(lively_run):
    run, happenings = lively_run
    kinds = Counter(e.kind for e in happenings)
    assert kinds[EventKind.REORGANISED] and kinds[EventKind.ORPHAN]  # a lively run
    mine = _by_party(happenings)
    for party in _parties(run):
        events = mine[party.name]
        assert all(e.tick <= run.ticks for e in events)
        appended = {e.hash: e.tick for e in events if e.kind == EventKind.APPENDED}
        assert appended == {short(h): t for h, t in party.arrived.items()}, party.name
        tips = [e.hash for e in events if e.kind == EventKind.TIP]
        genesis = short(party.genesis.hash)
        assert ([genesis] + tips)[-1] == short(party.tree.tip.hash), party.name
        for e in events:
            if e.kind == EventKind.APPENDED:
                record = party.tree.records[next(h for h in party.arrived
                                                 if short(h) == e.hash)]
                assert (e.height, e.parent) == (record.height, short(record.parent))


def test_the_log_counts_what_each_party_counts(lively_run):
    """Every acceptance, rejection (by reason) and send of the party's own counters."""
    run, happenings = lively_run
    mine = _by_party(happenings)
    assert sum(party.served_blocks for party in _parties(run)) > 0  # a catch-up
    for party in _parties(run):
        events = mine[party.name]
        accepted = Counter(e.message for e in events if e.kind == EventKind.ACCEPTED)
        assert accepted == Counter(party.accepted), party.name
        rejected: dict[str, Counter[str]] = defaultdict(Counter)
        for e in events:
            if e.kind == EventKind.REJECTED:
                rejected[e.message][e.reason] += 1
        assert rejected == {k: v for k, v in party.rejected.items() if v}, party.name
        sent = [e for e in events if e.kind == EventKind.SENT and e.message != "frame"]
        served = [e for e in sent if e.message == WB and e.to]
        assert len(served) == party.served_blocks
        own = Counter(e.message for e in sent if e not in served)
        assert own == Counter({k: n for k, n in party.sent.items() if k != "spam"})
    users = run.users
    assert users.replays and any(i["double_spend"] for i in users.issued)
    _check_users_sends(users, mine[USERS_NAME])
    # What the employees accepted as transactions, the users sent.
    accepted_tx = {e.hash for e in happenings if e.kind == EventKind.ACCEPTED and e.message == TX}
    assert accepted_tx and accepted_tx <= {e.hash for e in mine[USERS_NAME]}


def test_a_peer_graph_run_logs_what_is_forwarded_and_the_spammers_frames():
    run, happenings = logged_run(default_scenario().replace(
        trainer="hash", employees_num=6, adversaries="spammer:1", topology="random:2",
        target_blockchain_length=3, seed=2, log_file="unused.log", event_log_mb=5))
    kinds = Counter(e.kind for e in happenings)
    assert kinds[EventKind.FORWARDED] > 0
    unparsed = [e for e in happenings if e.kind == EventKind.REJECTED and e.message == "??"]
    assert unparsed and all(e.reason and not e.author for e in unparsed)
    assert Counter(e.message for e in happenings if e.kind == EventKind.FORWARDED) <= \
        Counter({"TD": 10**6, "BH": 10**6, "SS": 10**6, "WB": 10**6})


def test_a_shards_frame_carries_the_events():
    """BACKEND ray: a shard's answers reach the driver with their events."""
    happened = (Event(3, "E1", EventKind.TIP, hash="0a" * 5, height=1),
                Event(3, "E1", EventKind.SENT, message="TD", hash="0b" * 5))
    answer = Answer((b"x",), ((2, b"y"),), Status(1, b"t" * 32, None), (), happened)
    back = frames.read_one(frames.Stepped(({1: answer, 2: None},)).to_wire(), frames.Stepped)
    assert back.steps[0][1].happenings == happened and back.steps[0][2] is None


class _Direct:
    """Stands in for ``ray`` and an actor: a call runs the shard's method at once."""

    def __init__(self, shard=None):
        self.shard = shard

    def get(self, ref, timeout=None):
        return ref

    def __getattr__(self, method):
        call = getattr(self.shard, method)
        return type("Method", (), {"remote": staticmethod(call)})


def test_ray_shards_give_the_lockstep_event_log():
    """Shards stepping windows of two ticks through their frames, the events in the same
    order as the lockstep run's (the conductor hands them on by tick and party)."""
    from simulation.net.conductor import conduct
    from simulation.net.ray_backend import Shard, ShardHost

    scenario = lively(latency="uniform:2:5", event_log_mb=5)
    indices = [[0, 2, 4], [1, 3, 5]]
    host = ShardHost(_Direct(), [_Direct(Shard(scenario, shard, users=k == 0))
                                 for k, shard in enumerate(indices)], indices, timeout=5,
                     users=6)
    got: list[Event] = []
    roles = assign_adversaries(scenario)
    done = conduct(scenario, host, [i for i in range(6) if i not in roles],
                   on_happenings=got.extend)
    reference, expected = logged_run(scenario)
    assert done.ticks == reference.ticks
    assert got == expected and len(got) > 100
    _check_users_sends(reference.users, _users_sends(got))  # the first shard's users


def _listener(tmp_path: Path, limit: int):
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = start_listener(q, str(tmp_path / "text.log"), quiet=True,
                              event_log=(str(tmp_path / "events.jsonl"), limit))
    logging.getLogger().addHandler(handler := logging.handlers.QueueHandler(q))
    logging.getLogger("pot").setLevel(logging.DEBUG)
    return listener, handler


def test_the_writer_stops_at_its_size_and_says_where_the_log_is_complete(tmp_path, caplog):
    listener, handler = _listener(tmp_path, limit=400)
    try:
        for tick in range(12):
            log_happenings([Event(tick, "E0", EventKind.TIP, hash="0c" * 5, height=tick),
                            Event(tick, "E1", EventKind.TIP, hash="0d" * 5, height=tick)])
        logging.getLogger("pot.network").info("a line of the text log")
        drain(listener)  # the writer's warning, queued while it wrote, is written too
        listener.stop()
        assert finish_event_log(listener) == str(tmp_path / "events.jsonl")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert lines[0] == {"kind": "begin", "schema": 1, "limit_bytes": 400}
    events = [Event.from_wire(line) for line in lines[1:-1]]
    assert len((tmp_path / "events.jsonl").read_bytes()) - len(json.dumps(lines[-1])) <= 401
    last_tick = events[-1].tick
    assert [e.tick for e in events] == sorted([t for t in range(last_tick + 1)] * 2)
    assert lines[-1] == {"kind": "end", "events": len(events), "cut": True,
                         "complete_through_tick": last_tick,
                         "dropped": 2 * (11 - last_tick)}
    text = (tmp_path / "text.log").read_text()
    assert "a line of the text log" in text and '"kind"' not in text
    assert f"the event log reached EVENT_LOG_MB (400 bytes) at tick {last_tick + 1}" in text


def test_a_cut_counts_from_the_earliest_tick_left_out(tmp_path):
    """Records of different processes arrive out of tick order: the log is complete only
    through the tick before the earliest one dropped."""
    path = tmp_path / "events.jsonl"
    writer = EventLog(str(path), limit_bytes=200)
    for tick in (5, 6, 9, 7, 8):
        record = logging.LogRecord("pot.events", logging.INFO, "", 0,
                                   Event(tick, "E0", EventKind.TIP, hash="0e" * 5).to_line(),
                                   None, None)
        record.pot_tick, record.pot_events = tick, 1
        writer.handle(record)
    writer.close()
    writer.close()  # once only
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    written = [line["tick"] for line in lines if "tick" in line]
    assert written == [5, 6]
    assert lines[-1] == {"kind": "end", "events": 2, "cut": True, "complete_through_tick": 6,
                         "dropped": 3}


def test_a_negative_size_is_refused():
    assert problems(default_scenario().replace(event_log_mb=-1)) == [
        "EVENT_LOG_MB must be at least 0, got -1"]


def _lines(path: Path) -> list[str]:
    return sorted(line for line in path.read_text().splitlines() if '"tick"' in line)


@pytest.mark.processes
def test_the_process_backend_writes_the_lockstep_log_through_the_log_writer(tmp_path):
    """One OS process per party, each logging its own events through its log pipe: the
    same lines as the lockstep run (in another order), none of them in the text log."""
    scenario = lively(event_log_mb=5, log_file=str(tmp_path / "pot_sim.log"))
    outcome = runner.run(scenario, quiet=True, run_dir=str(tmp_path / "run"))
    assert outcome.exit_code == 0
    lockstep, happenings = logged_run(scenario)
    assert outcome.summary["ticks"] == lockstep.ticks
    lines = (tmp_path / "run" / "events.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["kind"] == "begin"
    assert json.loads(lines[-1]) == {"kind": "end", "events": len(happenings)}
    assert _lines(tmp_path / "run" / "events.jsonl") == sorted(e.to_line() for e in happenings)
    users_lines = [line for line in _lines(tmp_path / "run" / "events.jsonl")
                   if f'"party":"{USERS_NAME}"' in line]  # the users process's own
    assert len(users_lines) == len(_users_sends(happenings)) > 0
    assert '"kind":' not in (tmp_path / "run" / "pot_sim.log").read_text()


@pytest.mark.processes
def test_the_log_needs_a_run_folder(tmp_path):
    done = main_py("--trainer", "hash", "--event-log-mb", "5", "--no-run-dir", cwd=tmp_path,
                   timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {runner.EVENT_LOG_NEEDS_A_FOLDER}"]
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_counts_a_run_with_the_log_as_the_same_run():
    """The log changes what a run writes, not what it does: a sweep's run id (what
    resume matches) stays that of the run without it, as for LOG_FILE."""
    from simulation.experiments import sweep

    plain = sweep.make_run({"TRAINER": "hash"}, {}, seed=3)
    logged = sweep.make_run({"TRAINER": "hash", "EVENT_LOG_MB": "5"}, {}, seed=3)
    other = sweep.make_run({"TRAINER": "hash", "MAX_TICKS": "500"}, {}, seed=3)
    assert logged.run_id == plain.run_id != other.run_id


def test_the_replay_page_lists_the_users_sends_in_their_ticks_table(lively_run):
    """The users are no party of the page's charts (they hold no chain), but their sends
    are rows of their tick's event table, with the signing account."""
    from simulation.report.viewer import viewer_data

    run, happenings = lively_run
    data = viewer_data({"scenario": {"EMPLOYEES_NUM": 6}, "blocks": [], "ticks": run.ticks},
                       happenings, {"kind": "end"})
    assert USERS_NAME not in [p["name"] for p in data["parties"]]
    listed = [(tick, row) for tick, rows in data["events"].items() for row in rows
              if row[0] == USERS_NAME]
    assert listed == [
        (str(e.tick), [USERS_NAME, "sent", TX, e.hash, f"from {e.author}"])
        for e in _users_sends(happenings)]
