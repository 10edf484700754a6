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


# --- in a real browser ----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
_skip_without_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium; "
                             ".ci/run installs it, so these tests run in CI)")


def needs_chromium(test):
    """A test in headless Chromium: a browser process, skipped only without Chromium."""
    return pytest.mark.browser(pytest.mark.processes(_skip_without_chromium(test)))
EMPLOYER_STROKE = "rgb(123, 63, 160)"  # pictures.EMPLOYER, as the browser writes it
POISONED_FILL = "rgb(214, 39, 40)"  # pictures.POISONED


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run of the poisoned majority through main.py's runner (BACKEND lockstep), its
    folder with events.jsonl and viewer.html."""
    tmp = tmp_path_factory.mktemp("viewer")
    scenario = default_scenario().replace(**{**POISONED_MAJORITY, "backend": "lockstep",
                                             "log_file": str(tmp / "pot_sim.log")})
    outcome = runner.run(scenario, quiet=True, run_dir=str(tmp / "run"))
    assert outcome.exit_code == 0
    return tmp / "run"


def test_the_run_folder_has_the_page_only_with_the_event_log(run_folder, tmp_path):
    assert {"events.jsonl", "viewer.html"} <= {p.name for p in run_folder.iterdir()}
    scenario = default_scenario().replace(**{**POISONED_MAJORITY, "backend": "lockstep",
                                             "event_log_mb": 0, "max_ticks": 300,
                                             "log_file": str(tmp_path / "pot_sim.log")})
    runner.run(scenario, quiet=True, run_dir=str(tmp_path / "run"))
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert "results.json" in names and not names & {"events.jsonl", "viewer.html"}


class Drawn(HTMLParser):
    """What a page shows, read from its DOM: the body's data attributes, the points of
    each Plotly trace (by its uid) with their fill and stroke, the employer's chain as
    listed, the rows of the events table and the tick label."""

    def __init__(self, html: str):
        super().__init__()
        self.body: dict[str, str] = {}
        self.points: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.chain: list[str] = []
        self.event_rows = 0
        self.label = ""
        self._groups: list[str] = []
        self._table = ""
        self._in_label = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = {k[5:]: v for k, v in a.items() if k.startswith("data-")}
        elif tag == "g":
            self._groups.append(a.get("class", ""))
        elif tag == "path" and "point" in a.get("class", "").split():
            trace = next(c for c in reversed(self._groups) if c.startswith("trace scatter"))
            style = dict(part.split(":", 1) for part in a.get("style", "").split(";")
                         if ":" in part)
            self.points[trace.split()[-1][len("trace"):]].append(
                {k.strip(): v.strip() for k, v in style.items()})
        elif tag == "li" and "data-hash" in a:
            self.chain.append(a["data-hash"])
        elif tag in ("table", "tbody"):
            self._table = a.get("id", "") if tag == "table" else f"{self._table} body"
        elif tag == "tr" and self._table == "events body":
            self.event_rows += 1
        elif tag == "span" and a.get("id") == "tick-label":
            self._in_label = True

    def handle_endtag(self, tag):
        if tag == "g" and self._groups:
            self._groups.pop()
        elif tag == "span":
            self._in_label = False

    def handle_data(self, data):
        if self._in_label:
            self.label += data

    def blocks(self) -> list[dict[str, str]]:
        return [p for uid, points in self.points.items() if uid.startswith("blocks-")
                for p in points]


def _chromium(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", *args],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Expected:
    """What the page should show at a tick, worked out here from events.jsonl and
    results.json alone."""

    def __init__(self, folder: Path):
        self.results = json.loads((folder / "results.json").read_text())
        lines = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
        self.events = [line for line in lines if "tick" in line]
        self.genesis = next(b["hash"][:10] for b in self.results["blocks"] if not b["parent"])
        self.parent = {e["hash"]: e["parent"] for e in self.events if e["kind"] == "appended"}
        self.poisoned = {b["hash"][:10] for b in self.results["blocks"] if b["poisoned"]}

    def blocks_at(self, tick: int) -> set[str]:
        return {self.genesis} | {e["hash"] for e in self.events
                                 if e["kind"] == "appended" and e["tick"] <= tick}

    def employer_chain_at(self, tick: int) -> list[str]:
        tips = [e["hash"] for e in self.events if e["party"] == "employer"
                and e["kind"] == "tip" and e["tick"] <= tick]
        chain = [tips[-1] if tips else self.genesis]
        while chain[-1] != self.genesis:
            chain.append(self.parent[chain[-1]])
        return chain[::-1]

    def events_at(self, tick: int) -> int:
        return min(viewer.MAX_LISTED_PER_TICK, sum(1 for e in self.events if e["tick"] == tick))


def _check(drawn: Drawn, expected: Expected, tick: int) -> None:
    assert drawn.body["ready"] == "1" and drawn.body["tick"] == str(tick)
    blocks = expected.blocks_at(tick)
    assert len(drawn.blocks()) == len(blocks) == int(drawn.body["blocks"])
    assert sum(1 for p in drawn.blocks() if p["fill"] == POISONED_FILL) == \
        len(blocks & expected.poisoned)
    chain = expected.employer_chain_at(tick)
    assert drawn.chain == chain
    assert sum(1 for p in drawn.blocks() if p["stroke"] == EMPLOYER_STROKE) == len(chain)
    assert drawn.event_rows == expected.events_at(tick)
    assert drawn.label == f"tick {tick} of {expected.results['ticks']}"


@needs_chromium
def test_the_page_shows_the_whole_run_in_chromium(run_folder, tmp_path):
    """Opened as it is: the last tick, every block, the employer's chosen chain as the
    results give it (the poisoned branch, here)."""
    expected = Expected(run_folder)
    drawn = Drawn(_chromium(tmp_path, "--dump-dom", (run_folder / "viewer.html").as_uri()))
    last = expected.results["ticks"]
    _check(drawn, expected, last)
    employer = sorted((b for b in expected.results["blocks"] if b["on_employer_chain"]),
                      key=lambda b: b["height"])
    assert drawn.chain == [b["hash"][:10] for b in employer]
    assert set(drawn.chain[1:]) <= expected.poisoned  # the light client took that branch


# A page of the test's own that opens the viewer in a frame, moves its slider as a drag
# does (a new value, then an input event), presses its back button, and copies the
# viewer's body into its own DOM, where --dump-dom can read it.
DRIVER = """<!DOCTYPE html><html><body><textarea id="seen"></textarea>
<iframe id="viewer" src="VIEWER" width="1300" height="900"></iframe>
<script>
document.getElementById("viewer").onload = function () {
  const page = this.contentDocument;
  const slider = page.getElementById("tick");
  slider.value = "TICK";
  slider.dispatchEvent(new Event("input"));
  document.body.dataset.moved = page.body.dataset.tick;
  page.getElementById("back").click();
  document.getElementById("seen").textContent = page.body.outerHTML;
  document.body.dataset.done = page.location.hash;
};
</script></body></html>
"""


class _Seen(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.text, self.body, self._inside = "", {}, False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self._inside = tag == "textarea"
        if tag == "body":
            self.body = dict(attrs)

    def handle_endtag(self, tag):
        self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.text += data


@needs_chromium
def test_moving_the_slider_replays_an_earlier_tick_in_chromium(run_folder, tmp_path):
    expected = Expected(run_folder)
    # Where it is worth looking: a tick at which the poisoned branch has grown but the
    # run has not yet ended.
    first_poisoned = min(e["tick"] for e in expected.events
                         if e["kind"] == "appended" and e["hash"] in expected.poisoned)
    tick = first_poisoned + 40
    driver = tmp_path / "driver.html"
    driver.write_text(DRIVER.replace("VIEWER", (run_folder / "viewer.html").as_uri())
                      .replace("TICK", str(tick + 1)))
    seen = _Seen(_chromium(tmp_path, "--allow-file-access-from-files", "--dump-dom",
                           driver.as_uri()))
    assert seen.body["data-moved"] == str(tick + 1)  # the slider's own input event
    assert seen.body["data-done"] == f"#tick={tick}"  # then back; the address follows
    drawn = Drawn(seen.text)
    _check(drawn, expected, tick)
    assert 1 < len(drawn.blocks()) < len(expected.blocks_at(expected.results["ticks"]))
    assert drawn.chain != expected.employer_chain_at(expected.results["ticks"])


@needs_chromium
def test_the_address_selects_a_tick_and_a_block_in_chromium(run_folder, tmp_path):
    """A tick at which a block that is not the newest one (the page's own choice) is
    still spreading, selected by the address: who holds it then."""
    expected = Expected(run_folder)
    first: dict[str, dict[str, int]] = defaultdict(dict)  # block -> party -> tick
    for e in expected.events:
        if e["kind"] == "appended":
            first[e["hash"]].setdefault(e["party"], e["tick"])
    arrived = {h: min(held.values()) for h, held in first.items()}
    # Partly held at ``tick``, while another block arrives then (the newer one).
    pick = next((tick, h) for h, held in first.items() for tick in sorted(set(held.values()))
                if arrived[h] < tick < max(held.values())
                and any(t == tick and other != h for other, t in arrived.items()))
    tick, pinned = pick
    holders = sorted(p for p, t in first[pinned].items() if t <= tick)
    url = f"{(run_folder / 'viewer.html').as_uri()}#tick={tick}&block={pinned}"
    page = _chromium(tmp_path, "--dump-dom", url)
    drawn = Drawn(page)
    _check(drawn, expected, tick)
    assert drawn.body["selected"] == pinned
    said = re.search(r'<p id="holders">held at tick (\d+) by (\d+) of (\d+) parties: '
                     r'([^<]*)</p>', page)
    assert said and said.groups()[:3] == (str(tick), str(len(holders)), "8")
    assert sorted(said.group(4).split()) == holders
    green = [p for p in drawn.points["parties"] if p["fill"] == "rgb(44, 160, 44)"]
    assert len(green) == len(holders) < len(first[pinned])
