"""The multi-process layer without TensorFlow (hash trainer): wiring, determinism,
results, fault handling and the command line."""

from __future__ import annotations

import ast
import json
import logging
import multiprocessing
import os
import queue
import re
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from simulation.config import default_scenario
from simulation.net import frames
from simulation.net.lockstep import run_lockstep
from simulation.net.logs import LogPipes, log_to_queue
from simulation.net.network import Network, Party
from simulation.net.runner import run
from simulation.protocol.encoding import encode
from simulation.protocol.names import employee_name
from simulation.protocol.reasons import UNPARSED
from simulation.protocol.records import Status

pytestmark = pytest.mark.processes
ROOT = Path(__file__).resolve().parent.parent


def small(tmp_path: Path, **changes):
    base = dict(trainer="hash", employees_num=5, target_blockchain_length=4, seed=3,
                log_file=str(tmp_path / "pot_sim.log"))
    base.update(changes)
    return default_scenario().replace(**base)


def test_process_run_matches_in_process_lockstep(tmp_path):
    scenario = small(tmp_path)
    outcome = run(scenario, quiet=True)
    reference = run_lockstep(scenario)
    assert outcome.exit_code == 0
    assert outcome.summary["ticks"] == reference.ticks
    assert outcome.summary["chain"]["tip_hash"] == reference.employees[0].tree.tip_hash.hex()


def test_two_process_runs_are_identical_and_account_for_every_transaction(tmp_path):
    first = run(small(tmp_path), quiet=True, results_path=str(tmp_path / "a.json"))
    second = run(small(tmp_path), quiet=True, results_path=str(tmp_path / "b.json"))
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    for key in ("chain", "messages", "rewards", "balances", "transactions", "forks", "ticks"):
        assert a[key] == b[key], key
    assert first.exit_code == second.exit_code == 0
    tx = a["transactions"]
    assert tx["issued"] > 0
    assert tx["issued"] == tx["included"] + tx["rejected"] + tx["pending"]
    assert tx["lost"] == 0 and tx["included_more_than_once"] == 0
    assert sum(b["transactions"] for b in a["chain"]["blocks"]) == tx["included"]
    # The keys scripts rely on.
    assert a["chain"]["length"] >= 4 and re.fullmatch(r"[0-9a-f]{64}", a["chain"]["tip_hash"])
    assert a["agreement"]["all_honest_agree"] is True
    assert set(a["chain"]["blocks"][1]) >= {"height", "hash", "trainer", "roy", "tick",
                                           "transactions"}
    assert a["scenario"]["EMPLOYEES_NUM"] == 5
    assert {"sent", "rejected"} <= set(a["messages"])
    assert isinstance(a["wall_seconds"], float) and "test_accuracy" in a["model"]


def test_log_content_is_the_same_apart_from_timestamps_and_order(tmp_path):
    def lines(log: Path) -> list[str]:
        # Drop the wall-clock stamp, the start-up timing line and the process ids.
        return sorted(line.split(" ", 2)[2] for line in log.read_text().splitlines()
                      if line[:4].isdigit() and "ready after" not in line
                      and "ready (pid" not in line)

    run(small(tmp_path, log_file=str(tmp_path / "1.log")), quiet=True)
    run(small(tmp_path, log_file=str(tmp_path / "2.log")), quiet=True)
    first, second = lines(tmp_path / "1.log"), lines(tmp_path / "2.log")
    assert len(first) > 100
    assert [x for x in first if "Run: reached" not in x] == \
        [x for x in second if "Run: reached" not in x]


class _FakeParty(threading.Thread):
    """Answers ticks with one junk message; at ``die_at`` closes its pipe, at
    ``mute_at`` stops answering while keeping the pipe open."""

    def __init__(self, conn, die_at=None, mute_at=None, status=None, report=None):
        super().__init__(daemon=True)
        self.conn, self.die_at, self.mute_at = conn, die_at, mute_at
        self.report = report
        self.status = status or Status(0, b"t" * 32, None).to_wire()

    def run(self):
        self.conn.send_bytes(frames.Hello(0).to_wire())
        while True:
            try:
                frame = frames.read(self.conn.recv_bytes(), frames.Tick, frames.StopAndReport)
            except (EOFError, OSError):  # the network cut this party off
                return
            if isinstance(frame, frames.StopAndReport):
                self.conn.send_bytes(frames.PartyReport(self.report).to_wire())
                return
            if frame.t == self.die_at:
                self.conn.close()
                return
            if frame.t == self.mute_at:
                continue
            # Written by hand, not as frames.Done: the status may be a malformed one.
            self.conn.send_bytes(encode({"type": "done", "t": frame.t, "out": [b"x"],
                                         "to": [], "status": self.status}))


def fake_network(scenario, behaviour=None) -> Network:
    """A Network over in-process pipes to one ``_FakeParty`` per employee and one for the
    users; ``behaviour`` maps an employee index to _FakeParty keyword arguments."""
    n = scenario.employees_num
    parties = []
    for i in range(n + 1):
        ours, theirs = multiprocessing.Pipe()
        _FakeParty(theirs, **(behaviour or {}).get(i, {})).start()
        parties.append(Party(i, employee_name(i) if i < n else "users", ours))
    return Network(scenario, parties, set(range(n)))


def test_network_cuts_off_a_party_whose_pipe_closes_and_goes_on(tmp_path):
    scenario = small(tmp_path, employees_num=3, max_ticks=12)
    result = fake_network(scenario, {1: dict(die_at=5)}).run()
    assert result.finished is False  # the fakes never grow a chain
    assert result.ticks == 12
    assert list(result.cut_off) == ["E1"]
    assert "pipe closed" in result.cut_off["E1"]
    # E1 relayed one message per tick until it died at tick 5; the others all along.
    assert result.relayed["E1"] == 5 and result.relayed["E0"] == 13


def test_network_cuts_off_a_silent_party_after_the_party_timeout(tmp_path):
    # One declarer and two stakeholders: two honest employees could make blocks, so the
    # run is not ended early as out of reach (relay.out_of_reach) and goes on to MAX_TICKS.
    scenario = small(tmp_path, employees_num=2, max_ticks=6, party_timeout_seconds=0.5,
                     employer_confidence=1, stakeholders_num=2)
    started = time.monotonic()
    result = fake_network(scenario, {0: dict(mute_at=2)}).run()
    assert result.cut_off == {"E0": "no done frame within 0.5 s"}
    assert result.ticks == 6 and result.relayed["E1"] == 7
    assert time.monotonic() - started < 10  # waited once, then went on without E0


def test_network_cuts_off_a_party_whose_status_is_malformed(tmp_path):
    scenario = small(tmp_path, employees_num=2, max_ticks=4, employer_confidence=1,
                     stakeholders_num=2)  # within reach, as above
    result = fake_network(scenario, {1: dict(status={"height": "tall"})}).run()
    assert result.cut_off == {"E1": "bad frame: status: not a map of height, tip and anchor"}
    assert result.relayed["E0"] == 5


def test_network_cuts_off_a_party_whose_report_is_malformed(tmp_path):
    scenario = small(tmp_path, employees_num=2, max_ticks=2)
    result = fake_network(scenario, {0: dict(report={"index": 0})}).run()
    assert result.cut_off == {"E0": "bad report: report: behaviour must be text"}
    assert "E0" not in result.reports and "E1" in result.reports


def test_network_cuts_off_a_party_sending_garbage(tmp_path):
    scenario = small(tmp_path, employees_num=1, max_ticks=3)
    (a0, b0), (a1, b1) = multiprocessing.Pipe(), multiprocessing.Pipe()
    users = _FakeParty(b1)
    users.start()

    def garbage():
        b0.send_bytes(frames.Hello(0).to_wire())
        b0.recv_bytes()
        b0.send_bytes(b"\xff\x00 not cbor")

    threading.Thread(target=garbage, daemon=True).start()
    parties = [Party(0, "E0", a0), Party(1, "users", a1)]
    result = Network(scenario, parties, {0}).run()
    assert "bad frame" in result.cut_off["E0"]
    assert result.finished is False


def _main(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_invalid_scenario_stops_before_any_process_starts(tmp_path):
    done = _main("--stakeholders-num", "20", "--employees-num", "4", "--td-coinstake", "0",
                 "--log-file", str(tmp_path / "x.log"), cwd=tmp_path)
    assert done.returncode == 2
    assert "STAKEHOLDERS_NUM (20) exceeds EMPLOYEES_NUM (4)" in done.stderr
    assert "TD_COINSTAKE must lie in (0, 2**256)" in done.stderr
    assert not (tmp_path / "x.log").exists()  # nothing started, nothing logged


def test_help_lists_every_knob_with_its_comment(tmp_path):
    done = _main("--help", cwd=tmp_path)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for knob in default_scenario().knobs():
        assert "--" + knob.lower().replace("_", "-") in text
    assert "Training declarations from distinct employees" in text
    assert "(default: 2**252)" in text


def test_main_writes_results_and_quiet_console(tmp_path):
    done = _main("--trainer", "hash", "--employees-num", "4", "--target-blockchain-length",
                 "3", "--quiet", "--results", "out.json", "--log-file", "run.log",
                 cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "=== PoT run summary ===" in done.stdout
    assert "accepted TD" not in done.stdout  # INFO protocol lines stay in the log
    assert "accepted TD" in (tmp_path / "run.log").read_text()
    assert json.loads((tmp_path / "out.json").read_text())["finished"] is True


def test_a_crashed_employee_process_is_cut_off_and_the_rest_finish(tmp_path):
    outcome = run(small(tmp_path, adversaries="crash:1", crash_at_tick=4), quiet=True)
    s = outcome.summary
    (crashed,) = s["adversaries"]
    assert s["adversaries"][crashed] == "crash"
    assert s["cut_off"] == {crashed: "pipe closed (process gone)"}
    assert s["exit_codes"][crashed] == 3
    assert outcome.exit_code == 0 and s["finished"] and s["agreement"]["all_honest_agree"]


def test_a_spamming_employee_is_rejected_then_cut_off_and_the_rest_finish(tmp_path):
    outcome = run(small(tmp_path, adversaries="spammer:1"), quiet=True)
    s = outcome.summary
    (spammer,) = s["adversaries"]
    assert s["cut_off"] == {spammer: "frame larger than the network accepts"}
    assert UNPARSED == "??"  # the results' key for bytes that did not parse (README)
    reasons = s["messages"]["rejected"][UNPARSED]
    assert reasons["unknown message kind 'XX'"] > 0 and reasons["empty frame"] > 0
    assert outcome.exit_code == 0 and s["finished"]


def test_the_wall_clock_guard_ends_a_run_that_cannot_finish(tmp_path):
    scenario = small(tmp_path, target_blockchain_length=10**6, max_ticks=10**7,
                     max_wall_seconds=2.0)
    outcome = run(scenario, quiet=True)
    assert outcome.exit_code == 1
    assert outcome.summary["stopped_by"] == "MAX_WALL_SECONDS"
    assert not outcome.summary["finished"]
    assert outcome.summary["wall_seconds"] < 30


def _die_in_the_middle_of_a_record(conn) -> None:
    # A length prefix announcing 1000 bytes, then 7 of them: what a child killed while
    # sending a record leaves in its log pipe.
    os.write(conn.fileno(), struct.pack("!i", 1000) + b"partial")
    os._exit(9)


def _log_lines(conn, count: int) -> None:
    log_to_queue(conn)
    for i in range(count):
        logging.getLogger("pot.test").info("line %d", i)


def test_a_child_killed_in_the_middle_of_a_log_record_stops_no_other_child():
    """Children used to share one log queue, whose writers share a lock: a child killed
    while it held it (SIGKILL mid-record) left every other process blocked on its next
    record and at exit, and main.py hung. Each child has its own log pipe now."""
    # Not fork: a forked child would inherit the other child's pipe end, which the
    # runner's fork server and spawn never pass on.
    ctx = multiprocessing.get_context("spawn")
    records: queue.Queue = queue.Queue()
    pipes = LogPipes(ctx, records)
    dying, talking = pipes.new_pipe(), pipes.new_pipe()
    pipes.start()
    children = [ctx.Process(target=_die_in_the_middle_of_a_record, args=(dying,)),
                ctx.Process(target=_log_lines, args=(talking, 200))]
    for child in children:
        child.start()
    dying.close()
    talking.close()
    for child in children:
        child.join(30)
    assert [child.exitcode for child in children] == [9, 0]
    pipes.close(timeout=30)  # both pipes at end-of-file: the reader ends
    assert pipes._thread is not None and not pipes._thread.is_alive()
    lines = []
    while not records.empty():
        lines.append(records.get().getMessage())
    assert lines == [f"line {i}" for i in range(200)]


PRELOAD_PROBE = ("import sys, simulation.net.tf_preload; "
                 "print(sorted(m for m in sys.modules if m in {"
                 "'simulation.ml.keras_training', 'simulation.ml.dataset', "
                 "'simulation.net.employee_process', 'simulation.net.network', "
                 "'simulation.net.users_process', 'simulation.net.profiling'}))")


@pytest.mark.tf  # the fork server's preload imports TensorFlow
@pytest.mark.processes
@pytest.mark.parametrize("profile", [False, True])
def test_the_fork_server_preloads_the_process_modules_and_profiling_only_when_asked(
        profile, tmp_path):
    """What every forked child inherits (tf_preload): the training and process modules
    (a restructure once dropped them silently, and the profiler then timed nothing in
    them), and the profiling hooks only with POT_PROFILE_DIR set."""
    env = {k: v for k, v in os.environ.items() if k != "POT_PROFILE_DIR"}
    if profile:
        env["POT_PROFILE_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", PRELOAD_PROBE], env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    loaded = ast.literal_eval(out.strip().splitlines()[-1])
    modules = ["simulation.ml.dataset", "simulation.ml.keras_training",
               "simulation.net.employee_process", "simulation.net.network",
               "simulation.net.users_process"]
    assert loaded == sorted(modules + (["simulation.net.profiling"] if profile else []))
