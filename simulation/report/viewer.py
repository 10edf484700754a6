"""viewer.html: a page in the run folder that replays the run from its event log.

With EVENT_LOG_MB the run folder holds events.jsonl (``protocol.events``); at the end of
the run this module reads it beside the summary and writes one self-contained page: the
data as JSON, Plotly's own bundle inline (no network needed) and the small script of
``viewer_page``, which draws with Plotly. A slider over the ticks shows the block tree as
it grew (the reference chain, stale honest blocks, poisoned blocks and blocks only
adversaries held, each in its colour), the employer's chosen chain (outlined), which
parties hold a block at that tick (with their regions and peer links), every party's
tip, and the events of that tick.

What is computed here, from the log alone, is who held which block from which tick (a
party's ``appended`` events), every party's tip over time (its ``tip`` events) and the
events of each tick; the summary adds what only the end of the run knows: which blocks
form the reference chain and which are poisoned. Blocks are named by their short hash,
the first 10 hex digits, as the logs show them.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from typing import Any

from simulation.config.topology import PeerGraph
from simulation.protocol.encoding import DecodeError
from simulation.protocol.events import END, FILE_NAME, Event, EventKind
from simulation.protocol.names import EMPLOYER_NAME, employee_name
from simulation.report.pictures import EMPLOYER, HONEST, POISONED, REFERENCE, tree_layout
from simulation.report.viewer_page import page

log = logging.getLogger("pot.viewer")

VIEWER_FILE = "viewer.html"
SHORT = 10  # hex digits of a short hash, as the logs write them
# Events of one tick listed in the page's table; events.jsonl holds every one.
MAX_LISTED_PER_TICK = 300
# The block classes, in the legend's order: (key, legend name, colour).
CLASSES = (("chain", "reference chain", REFERENCE),
           ("stale", "stale (honest, off the chain)", HONEST),
           ("poisoned", "poisoned", POISONED),
           ("adversary", "held only by adversaries", "#ff9f1c"))


def read_event_log(path: str) -> tuple[list[Event], dict[str, Any] | None, int]:
    """The events of ``path``, its last line (None: the run did not close the log) and
    how many lines were not events of the schema (skipped)."""
    events: list[Event] = []
    end = None
    bad = 0
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            try:
                wire = json.loads(line)
                if isinstance(wire, dict) and "tick" not in wire:
                    if wire.get("kind") == END:
                        end = wire
                    continue
                events.append(Event.from_wire(wire))
            except (ValueError, DecodeError):
                bad += 1
    return events, end, bad


def _detail(e: Event) -> str:
    """An event's particulars in words, for the page's table."""
    words = []
    if e.author:
        words.append(f"from {e.author}")
    if e.to:
        words.append(f"to {e.to}")
    if e.kind in (EventKind.APPENDED, EventKind.ORPHAN):
        words.append(f"height {e.height} on {e.parent}, trainer {e.trainer}, roy {e.roy}")
        if e.transactions >= 0:
            words.append(f"{e.transactions} transactions")
    elif e.height >= 0:
        words.append(f"height {e.height}")
    if e.want:
        words.append(f"for block {e.want}")
    if e.abandoned:
        words.append(f"abandons {' '.join(e.abandoned)}")
    if e.size >= 0:
        words.append(f"{e.size} bytes")
    text = ", ".join(words)
    return ": ".join(part for part in (text, e.reason) if part)


def _party_names(summary: dict[str, Any]) -> list[str]:
    knobs = summary.get("scenario") or {}
    count = int(knobs.get("EMPLOYEES_NUM") or 0)
    return [employee_name(i) for i in range(count)] + [EMPLOYER_NAME]


def viewer_data(summary: dict[str, Any], events: list[Event], end: dict[str, Any] | None,
                peers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """What the page shows, as plain data (``page`` embeds it). ``peers``: each party's
    peer links (None: the full mesh, every party hears every other)."""
    parties = _party_names(summary)
    known: dict[str, dict[str, Any]] = {}
    for b in summary.get("blocks") or []:
        short = b["hash"][:SHORT]
        known[short] = {"hash": short, "parent": (b["parent"] or "")[:SHORT] or None,
                        "height": b["height"], "trainer": b.get("trainer"),
                        "poisoned": b.get("poisoned"),
                        "seen_by_honest": b.get("seen_by_honest", True),
                        "on_chain": b.get("on_chain", False),
                        "on_employer_chain": b.get("on_employer_chain", False)}
    genesis = next((h for h, b in known.items() if b["parent"] is None), None)
    held: dict[str, dict[str, int]] = defaultdict(dict)  # block -> party -> first tick
    roy: dict[str, str] = {}
    tips: dict[str, list[tuple[int, str]]] = defaultdict(list)
    by_tick: dict[int, list[list[Any]]] = defaultdict(list)
    more: dict[int, int] = defaultdict(int)  # events of a tick beyond the table's
    for e in events:
        if e.kind == EventKind.APPENDED:
            held[e.hash].setdefault(e.party, e.tick)
            roy.setdefault(e.hash, e.roy)
            if e.hash not in known:  # no honest employee nor the employer kept it
                known[e.hash] = {"hash": e.hash, "parent": e.parent or None,
                                 "height": e.height, "trainer": e.trainer, "poisoned": None,
                                 "seen_by_honest": False, "on_chain": False,
                                 "on_employer_chain": False}
        elif e.kind == EventKind.TIP:
            tips[e.party].append((e.tick, e.hash))
        if len(by_tick[e.tick]) < MAX_LISTED_PER_TICK:
            by_tick[e.tick].append([e.party, str(e.kind), e.message, e.hash, _detail(e)])
        else:
            more[e.tick] += 1
    last_tick = int(summary.get("ticks") or 0)
    if events:
        last_tick = max(last_tick, max(e.tick for e in events))
    cut_at = None
    if end is not None and end.get("cut"):
        cut_at = int(end.get("complete_through_tick", last_tick))
        last_tick = min(last_tick, max(cut_at, 0))
    place = tree_layout(list(known.values()))
    blocks = []
    for h, b in sorted(known.items(), key=lambda item: (item[1]["height"] or 0, item[0])):
        if h not in place:
            continue
        holders = {p: 0 for p in parties} if h == genesis else dict(held.get(h, {}))
        if not holders:
            continue  # known at the end, but the log holds no append of it (cut)
        if b["on_chain"]:
            kind = "chain"
        elif b["poisoned"]:
            kind = "poisoned"
        elif b["seen_by_honest"]:
            kind = "stale"
        else:
            kind = "adversary"
        blocks.append({"hash": h, "parent": b["parent"], "height": b["height"] or 0,
                       "lane": place[h][1], "trainer": b["trainer"] or "",
                       "roy": roy.get(h, ""), "cls": kind, "held": holders,
                       "first": min(holders.values())})
    roles = summary.get("adversaries") or {}
    regions = (summary.get("network") or {}).get("regions") or {}
    knobs = summary.get("scenario") or {}
    return {
        "title": f"{len(parties) - 1} employees, seed {knobs.get('SEED')}, "
                 f"{knobs.get('TRAINER')} trainer, {summary.get('ticks')} ticks, "
                 f"stopped by {summary.get('stopped_by')}",
        "last_tick": last_tick, "cut_at": cut_at, "closed": end is not None,
        "genesis": genesis, "blocks": blocks,
        "classes": [{"key": k, "name": n, "colour": c} for k, n, c in CLASSES],
        "employer_colour": EMPLOYER,
        "parties": [{"name": p, "role": roles.get(p, "employer" if p == EMPLOYER_NAME
                                                  else "honest"),
                     "region": regions.get(p, ""), "peers": (peers or {}).get(p, [])}
                    for p in parties],
        "full_mesh": peers is None,
        "tips": {p: [[t, h] for t, h in sorted(tips[p], key=lambda tip: tip[0])]
                 for p in parties if tips.get(p)},
        "events": {str(t): rows for t, rows in sorted(by_tick.items())},
        "more": {str(t): n for t, n in sorted(more.items())},
    }


def peer_links(graph: PeerGraph | None) -> dict[str, list[str]] | None:
    """Each party's peers by name (None for the full mesh)."""
    if graph is None:
        return None
    links = {employee_name(i): [employee_name(j) for j in peers]
             for i, peers in enumerate(graph.peers)}
    links[EMPLOYER_NAME] = [employee_name(j) for j in sorted(graph.employer_peers)]
    for j in graph.employer_peers:
        links[employee_name(j)].append(EMPLOYER_NAME)
    return links


def plotly_bundle() -> str | None:
    """plotly.js from the pinned plotly package (None: not installed)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        return None
    return str(get_plotlyjs())


def write_viewer(summary: dict[str, Any], folder: str,
                 peers: dict[str, list[str]] | None = None) -> str | None:
    """viewer.html in ``folder`` from its events.jsonl; returns its path, or None (with
    the reason in the log) when there is no event log or no plotly."""
    events_path = os.path.join(folder, FILE_NAME)
    if not os.path.exists(events_path):
        return None
    bundle = plotly_bundle()
    if bundle is None:
        log.warning("no %s: the page draws with plotly, which is not installed "
                    "(pip install -r requirements.txt)", VIEWER_FILE)
        return None
    events, end, bad = read_event_log(events_path)
    if bad:
        log.warning("%s: %d line(s) are not events of its schema; the page leaves them out",
                    events_path, bad)
    data = viewer_data(summary, events, end, peers)
    path = os.path.join(folder, VIEWER_FILE)
    with open(path, "w", encoding="utf-8") as out:
        out.write(page(data, bundle))
    return path
