"""viewer.html, the run folder's replay page (EVENT_LOG_MB): what it is told from the
event log and the summary, that it is one file needing no network, and, in headless
Chromium (Debian's chromium package), what it draws."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import pytest

from simulation.config import default_scenario
from simulation.net import runner
from simulation.net.lockstep import network_result, run_lockstep
from simulation.node.adversaries import assign_adversaries
from simulation.node.employee import short
from simulation.node.genesis import genesis_of
from simulation.protocol.events import Event, EventKind
from simulation.report import viewer
from simulation.report.reporting import summarize

ROOT = Path(__file__).resolve().parent.parent
# A poisoned majority of a small network: its branch grows beside the honest chain and
# the employer's light client follows it (1385 ticks, 0.7 s of lockstep).
POISONED_MAJORITY = dict(trainer="hash", employees_num=7, adversaries="poisoned:4",
                         latency="uniform:1:4", seed=1, log_file="unused.log", event_log_mb=5)


@pytest.fixture(scope="module")
def replayed():
    scenario = default_scenario().replace(**POISONED_MAJORITY)
    happenings: list[Event] = []
    run = run_lockstep(scenario, on_happenings=happenings.extend)
    summary = summarize(scenario, genesis_of(scenario), network_result(run),
                        assign_adversaries(scenario), 0.0)
    return run, happenings, summary


def test_the_page_is_told_who_held_which_block_from_when(replayed):
    run, happenings, summary = replayed
    data = viewer.viewer_data(summary, happenings, {"kind": "end"})
    parties = [*run.employees, run.employer]
    held: dict[str, dict[str, int]] = defaultdict(dict)
    for party in parties:
        for h, tick in party.arrived.items():
            held[short(h)][party.name] = tick
    genesis = short(run.employer.genesis.hash)
    blocks = {b["hash"]: b for b in data["blocks"]}
    assert set(blocks) == set(held) | {genesis}
    for h, b in blocks.items():
        expected = {p.name: 0 for p in parties} if h == genesis else held[h]
        assert b["held"] == expected and b["first"] == min(expected.values()), h
    on_chain = {b["hash"][:10] for b in summary["blocks"] if b["on_chain"]}
    poisoned = {b["hash"][:10] for b in summary["blocks"] if b["poisoned"]}
    assert poisoned and {h for h, b in blocks.items() if b["cls"] == "chain"} == on_chain
    assert {h for h, b in blocks.items() if b["cls"] == "poisoned"} == poisoned
    for party in parties:
        tips = data["tips"].get(party.name, [])
        assert ([[0, genesis]] + tips)[-1][1] == short(party.tree.tip.hash)
    per_tick = defaultdict(int)
    for e in happenings:
        per_tick[e.tick] += 1
    listed = {int(t): len(rows) + data["more"].get(t, 0) for t, rows in data["events"].items()}
    assert listed == per_tick
    assert data["last_tick"] == run.ticks and data["cut_at"] is None and data["closed"]


def test_a_cut_log_is_replayed_through_its_last_complete_tick(replayed):
    _, happenings, summary = replayed
    data = viewer.viewer_data(summary, [e for e in happenings if e.tick <= 300],
                              {"kind": "end", "cut": True, "complete_through_tick": 300})
    assert data["last_tick"] == 300 and data["cut_at"] == 300
    assert max(b["first"] for b in data["blocks"]) <= 300
    assert not viewer.viewer_data(summary, happenings, None)["closed"]


def test_the_page_names_regions_and_peer_links():
    scenario = default_scenario().replace(
        trainer="hash", employees_num=5, latency="regions", topology="random:2",
        employer_peers=2, target_blockchain_length=3, seed=2, log_file="unused.log",
        event_log_mb=5)
    happenings: list[Event] = []
    run = run_lockstep(scenario, on_happenings=happenings.extend)
    summary = summarize(scenario, genesis_of(scenario), network_result(run), {}, 0.0)
    links = viewer.peer_links(scenario.peer_graph)
    data = viewer.viewer_data(summary, happenings, {"kind": "end"}, links)
    graph = scenario.peer_graph
    by_name = {p["name"]: p for p in data["parties"]}
    for i, peers in enumerate(graph.peers):
        assert set(by_name[f"E{i}"]["peers"]) - {"employer"} == {f"E{j}" for j in peers}
    assert sorted(by_name["employer"]["peers"]) == sorted(f"E{j}" for j in
                                                          graph.employer_peers)
    assert all(("employer" in by_name[f"E{j}"]["peers"]) == (j in graph.employer_peers)
               for j in range(5))
    assert {p: by_name[p]["region"] for p in by_name} == summary["network"]["regions"]
    assert not data["full_mesh"]


def _data_of(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="viewer-data">(.*?)</script>',
                      page, re.S)
    assert found
    return json.loads(found.group(1))


def test_the_page_is_one_file_that_needs_no_network(replayed, tmp_path):
    _, happenings, summary = replayed
    (tmp_path / "events.jsonl").write_text(
        '{"kind":"begin","schema":1,"limit_bytes":1}\n'
        + "".join(e.to_line() + "\n" for e in happenings) + '{"kind":"end","events":1}\n')
    path = viewer.write_viewer(summary, str(tmp_path))
    assert path == str(tmp_path / "viewer.html")
    page = Path(path).read_text(encoding="utf-8")
    assert viewer.plotly_bundle() in page  # Plotly inline
    tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", page)
    assert tags and not [t for t in tags if re.search(r"\b(src|href)=", t)]
    assert _data_of(page) == json.loads(json.dumps(
        viewer.viewer_data(summary, happenings, {"kind": "end", "events": 1})))


def test_a_text_that_would_close_the_script_stays_inside_it(replayed):
    _, happenings, summary = replayed
    odd = Event(1, "E0", EventKind.REJECTED, message="??", reason="</script><b>x")
    page = viewer.page(viewer.viewer_data(summary, [*happenings, odd], None), "")
    assert "</script><b>" not in page
    assert any(row[4] == "</script><b>x" for row in _data_of(page)["events"]["1"])


def test_without_plotly_there_is_no_page_and_a_warning(replayed, tmp_path, monkeypatch,
                                                       caplog):
    _, happenings, summary = replayed
    (tmp_path / "events.jsonl").write_text(happenings[0].to_line() + "\n")
    monkeypatch.setattr(viewer, "plotly_bundle", lambda: None)
    assert viewer.write_viewer(summary, str(tmp_path)) is None
    assert not (tmp_path / "viewer.html").exists()
    assert "plotly, which is not installed" in caplog.text
