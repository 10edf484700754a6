"""The page of viewer.html: its HTML, style and script, around Plotly's bundle and the
data of ``viewer.viewer_data``.

The script draws two Plotly charts (the block tree, x = height, y = branch lane as the
block tree picture lays them out; the parties, with their peer links) and fills plain
tables. It re-draws everything for the tick of the slider (or of ``#tick=N`` in the
address, ``&block=HASH`` to select a block) and, once drawn, writes what it shows into
data attributes (``data-tick``, ``data-blocks``, ``data-selected`` on the body; each
listed block of the employer's chain has ``data-hash``), which the browser tests read.
"""

from __future__ import annotations

import json
from typing import Any

STYLE = """
body { font-family: sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.3em; margin-bottom: 0.2em; }
h2 { font-size: 1.05em; margin: 0.8em 0 0.3em; }
#note { color: #a33; }
#controls { display: flex; align-items: center; gap: 0.5em; margin: 0.6em 0; }
#tick { flex: 1; }
#tick-label { min-width: 7em; font-weight: bold; }
.row { display: flex; gap: 2em; align-items: flex-start; flex-wrap: wrap; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: left; }
th { background: #f3f3f3; }
code, .hash { font-family: monospace; }
#employer-chain { font-family: monospace; font-size: 0.9em; max-height: 16em;
                  overflow-y: auto; padding-left: 3em; margin: 0; }
.muted { color: #777; }
"""

BODY = """
<h1>Replay of a PoT run</h1>
<p id="title"></p>
<p id="note"></p>
<div id="controls">
  <button id="back" title="previous tick">&#9664;</button>
  <input type="range" id="tick" min="0" value="0" step="1" aria-label="tick">
  <button id="forward" title="next tick">&#9654;</button>
  <button id="play">play</button>
  <span id="tick-label"></span>
</div>
<div id="tree" style="height: 430px;"></div>
<div class="row">
  <div id="parties-plot" style="width: 470px; height: 400px;"></div>
  <div>
    <h2>Block <span id="selected" class="hash"></span></h2>
    <p id="holders"></p>
    <h2>The employer's chain at this tick</h2>
    <ol id="employer-chain" start="0"></ol>
  </div>
</div>
<h2>Parties at this tick</h2>
<table id="parties"><thead><tr><th>party</th><th>role</th><th>region</th>
<th>peers</th><th>tip</th><th>height</th><th>blocks held</th></tr></thead>
<tbody></tbody></table>
<h2>Events of this tick</h2>
<p id="events-note" class="muted"></p>
<table id="events"><thead><tr><th>party</th><th>event</th><th>message</th>
<th>hash</th><th>details</th></tr></thead><tbody></tbody></table>
"""

SCRIPT = r"""
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("viewer-data").textContent);
  const byHash = new Map(D.blocks.map(b => [b.hash, b]));
  const slider = document.getElementById("tick");
  const names = D.parties.map(p => p.name);
  let pinned = null;  // a block chosen by a click or by &block=
  let timer = null;

  function heldAt(b, t) {
    return names.filter(p => p in b.held && b.held[p] <= t);
  }
  function tipAt(party, t) {
    let tip = D.genesis;
    for (const [tick, hash] of D.tips[party] || []) {
      if (tick > t) break;
      if (byHash.has(hash)) tip = hash;
    }
    return tip;
  }
  function chainOf(tip) {
    const out = [];
    for (let h = tip; h && byHash.has(h); h = byHash.get(h).parent) out.push(h);
    return out.reverse();
  }
  function label(h) {
    const b = byHash.get(h);
    return b.parent ? h + " (" + (b.trainer || "?") + ")" : h + " (genesis)";
  }
  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }
  function fillTable(id, rows) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    for (const row of rows) {
      const tr = document.createElement("tr");
      row.forEach((text, i) => cell(tr, text, i === 3 && id === "events" ? "hash" : ""));
      body.appendChild(tr);
    }
  }

  function drawTree(visible, t, onEmployer, selected) {
    const shown = new Set(visible.map(b => b.hash));
    const lx = [], ly = [];
    for (const b of visible) {
      if (b.parent && shown.has(b.parent)) {
        const p = byHash.get(b.parent);
        lx.push(p.height, b.height, null);
        ly.push(p.lane, b.lane, null);
      }
    }
    const traces = [{type: "scatter", mode: "lines", x: lx, y: ly, uid: "links",
                     line: {color: "#9a9a9a", width: 1.5}, hoverinfo: "skip",
                     showlegend: false}];
    for (const c of D.classes) {
      const pts = visible.filter(b => b.cls === c.key);
      traces.push({
        type: "scatter", mode: "markers+text", uid: "blocks-" + c.key, name: c.name,
        x: pts.map(b => b.height), y: pts.map(b => b.lane),
        text: pts.map(b => b.hash + "<br>" + (b.parent ? b.trainer : "genesis")),
        textposition: "top center", textfont: {size: 9},
        customdata: pts.map(b => b.hash), hoverinfo: "text",
        hovertext: pts.map(b => label(b.hash) + "<br>height " + b.height +
                   (b.roy ? ", roy " + b.roy : "") + "<br>held by " +
                   heldAt(b, t).join(" ")),
        marker: {size: pts.map(b => b.hash === selected ? 20 : 13), color: c.colour, opacity: 1,
                 line: {color: pts.map(b => onEmployer.has(b.hash) ? D.employer_colour
                                                                    : "#ffffff"),
                        width: pts.map(b => onEmployer.has(b.hash) ? 3.5 : 1)}}});
    }
    const lanes = D.blocks.map(b => b.lane);
    const heights = D.blocks.map(b => b.height);
    Plotly.react("tree", traces, {
      margin: {l: 40, r: 10, t: 30, b: 40}, hovermode: "closest",
      title: {text: "Block tree at tick " + t + " (outlined: the employer's chain)",
              font: {size: 13}},
      xaxis: {title: {text: "height"}, range: [-0.6, Math.max(...heights) + 0.6],
              dtick: 1, zeroline: false},
      yaxis: {title: {text: "branch"}, range: [Math.min(...lanes) - 0.7,
                                               Math.max(...lanes) + 0.9],
              zeroline: false, showticklabels: false},
      legend: {orientation: "h", y: -0.18}}, {displaylogo: false, responsive: true});
  }

  function partyPlace() {
    // The employer in the middle, the employees on a circle, grouped by region.
    const employees = D.parties.filter(p => p.name !== "employer");
    employees.sort((a, b) => (a.region || "").localeCompare(b.region || "") ||
                   parseInt(a.name.slice(1)) - parseInt(b.name.slice(1)));
    const place = {employer: [0, 0]};
    employees.forEach((p, i) => {
      const angle = 2 * Math.PI * i / employees.length;
      place[p.name] = [Math.cos(angle), Math.sin(angle)];
    });
    return place;
  }
  const place = partyPlace();

  function drawParties(holders, t) {
    const lx = [], ly = [];
    for (const p of D.parties) {
      for (const q of p.peers) {
        if (p.name < q && place[q]) {
          lx.push(place[p.name][0], place[q][0], null);
          ly.push(place[p.name][1], place[q][1], null);
        }
      }
    }
    const holding = new Set(holders);
    const pts = D.parties;
    const traces = [
      {type: "scatter", mode: "lines", x: lx, y: ly, uid: "peer-links", hoverinfo: "skip",
       line: {color: "#c8c8c8", width: 1}, showlegend: false},
      {type: "scatter", mode: "markers+text", uid: "parties", showlegend: false,
       x: pts.map(p => place[p.name][0]), y: pts.map(p => place[p.name][1]),
       text: pts.map(p => p.name), textposition: "bottom center", hoverinfo: "text",
       hovertext: pts.map(p => p.name + " (" + p.role + ")" +
                  (p.region ? ", " + p.region : "") +
                  (p.peers.length ? "<br>peers " + p.peers.join(" ") : "")),
       marker: {size: 18, symbol: pts.map(p => p.name === "employer" ? "diamond" : "circle"),
                color: pts.map(p => holding.has(p.name) ? "#2ca02c" : "#d9d9d9"),
                line: {color: pts.map(p => p.role === "honest" || p.role === "employer"
                                            ? "#555" : "#d62728"), width: 2}}}];
    Plotly.react("parties-plot", traces, {
      margin: {l: 10, r: 10, t: 30, b: 10}, hovermode: "closest",
      title: {text: "Who holds the block (green)" + (D.full_mesh ?
              ", full mesh: everyone hears everyone" : ", with peer links"),
              font: {size: 12}},
      xaxis: {visible: false, range: [-1.35, 1.35]},
      yaxis: {visible: false, range: [-1.3, 1.3], scaleanchor: "x"}},
      {displaylogo: false, displayModeBar: false});
  }

  function render(t) {
    t = Math.max(0, Math.min(D.last_tick, t));
    slider.value = String(t);
    document.getElementById("tick-label").textContent = "tick " + t + " of " + D.last_tick;
    const visible = D.blocks.filter(b => b.first <= t);
    const employerChain = chainOf(tipAt("employer", t));
    const onEmployer = new Set(employerChain);
    let selected = pinned && byHash.has(pinned) && byHash.get(pinned).first <= t ? pinned
      : null;
    if (!selected) {  // the block that arrived last: the one spreading now
      const newest = visible.slice().sort((a, b) => b.first - a.first || b.height - a.height);
      selected = newest.length ? newest[0].hash : D.genesis;
    }
    drawTree(visible, t, onEmployer, selected);
    const holders = selected ? heldAt(byHash.get(selected), t) : [];
    drawParties(holders, t);
    document.getElementById("selected").textContent = selected ? label(selected) : "";
    document.getElementById("holders").textContent = "held at tick " + t + " by " +
      holders.length + " of " + names.length + " parties: " + holders.join(" ");
    const list = document.getElementById("employer-chain");
    list.replaceChildren();
    for (const h of employerChain) {
      const li = document.createElement("li");
      li.textContent = label(h);
      li.dataset.hash = h;
      list.appendChild(li);
    }
    fillTable("parties", D.parties.map(p => {
      const tip = tipAt(p.name, t);
      const count = D.blocks.filter(b => p.name in b.held && b.held[p.name] <= t).length;
      return [p.name, p.role, p.region || "", p.peers.join(" ") || (D.full_mesh ? "all" : ""),
              tip, String(byHash.get(tip).height), String(count)];
    }));
    const rows = D.events[String(t)] || [];
    const extra = D.more[String(t)] || 0;
    document.getElementById("events-note").textContent = rows.length ?
      rows.length + " event(s)" + (extra ? ", and " + extra + " more in events.jsonl" : "")
      : "nothing happened at this tick";
    fillTable("events", rows);
    const body = document.body.dataset;
    body.tick = String(t);
    body.blocks = String(visible.length);
    body.selected = selected || "";
    body.ready = "1";
  }

  function fromAddress() {
    const asked = new URLSearchParams(location.hash.slice(1));
    if (asked.has("block")) pinned = asked.get("block");
    const t = parseInt(asked.get("tick"), 10);
    return Number.isNaN(t) ? D.last_tick : t;
  }
  function go(t) {
    render(t);
    try {
      history.replaceState(null, "", "#tick=" + slider.value +
                           (pinned ? "&block=" + pinned : ""));
    } catch (e) { /* some browsers refuse it for files: the page works without */ }
  }

  document.getElementById("title").textContent = D.title;
  const notes = [];
  if (D.cut_at !== null) notes.push("The event log was cut when it reached EVENT_LOG_MB: " +
                                    "it is complete through tick " + D.cut_at + ".");
  if (!D.closed) notes.push("The event log has no last line: the run ended before " +
                            "closing it, so it may be incomplete.");
  document.getElementById("note").textContent = notes.join(" ");
  slider.max = String(D.last_tick);
  slider.addEventListener("input", () => go(parseInt(slider.value, 10)));
  document.getElementById("back").onclick = () => go(parseInt(slider.value, 10) - 1);
  document.getElementById("forward").onclick = () => go(parseInt(slider.value, 10) + 1);
  document.getElementById("play").onclick = () => {
    if (timer) { clearInterval(timer); timer = null; return; }
    if (parseInt(slider.value, 10) >= D.last_tick) go(0);
    timer = setInterval(() => {
      const t = parseInt(slider.value, 10);
      if (t >= D.last_tick) { clearInterval(timer); timer = null; return; }
      go(t + 1);
    }, 250);
  };
  render(fromAddress());
  document.getElementById("tree").on("plotly_click", event => {
    const point = event.points && event.points[0];
    if (point && point.customdata) { pinned = point.customdata; go(parseInt(slider.value, 10)); }
  });
  window.addEventListener("hashchange", () => render(fromAddress()));
})();
"""


def _script_safe(text: str) -> str:
    """JSON inside a script element: no ``</`` may close it early."""
    return text.replace("</", "<\\/")


def page(data: dict[str, Any], plotly_js: str) -> str:
    """The whole page: Plotly, the data and the script, inline."""
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<title>PoT run replay</title>\n<style>", STYLE, "</style>\n",
        "<script>", plotly_js, "</script>\n</head>\n<body>", BODY,
        "<script type=\"application/json\" id=\"viewer-data\">",
        _script_safe(json.dumps(data, separators=(",", ":"))), "</script>\n",
        "<script>", SCRIPT, "</script>\n</body>\n</html>\n",
    ])
