"""Scenarios as files: ``python main.py --scenario FILE`` (TOML or JSON).

A scenario file sets knobs by their constants.py names (any case), for example::

    # poisoned.toml
    EMPLOYEES_NUM = 21
    ADVERSARIES = "poisoned:8"
    TD_COINSTAKE = "2**252"      # TOML integers stop at 2**63: a power may be text
    TASK = "mnist-cnn"

Knobs it does not name keep their constants.py value; flags given beside ``--scenario``
override the file. A run folder's scenario.json (every knob of the run under "knobs") is a
scenario file too, which is what its re-run command uses: it reproduces the run whatever
constants.py holds later.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import tomllib
from typing import Any

from simulation.config.flags import parse_int
from simulation.config.knobs import Scenario, ScenarioError, default_scenario


def read_scenario_file(path: str) -> dict[str, Any]:
    """The knob values ``path`` sets, as Scenario field names -> values. Raises
    ScenarioError with one line per problem (an unreadable file, an unknown knob, a
    power that is not an integer)."""
    where = f"--scenario {path}"
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ScenarioError([f"{where}: cannot be read ({exc.strerror or exc})"]) from None
    try:
        if path.endswith(".json"):
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "JSON" if path.endswith(".json") else "TOML"
        raise ScenarioError([f"{where}: not valid {kind}: {exc}"]) from None
    if isinstance(data, dict) and isinstance(data.get("knobs"), dict):
        data = data["knobs"]  # a run folder's scenario.json
    if not isinstance(data, dict):
        raise ScenarioError([f"{where}: must hold a table of KNOB = value"])
    fields = {f.name: f for f in dataclasses.fields(Scenario)}
    defaults = default_scenario()
    changes: dict[str, Any] = {}
    problems = []
    for key, value in data.items():
        name = str(key).lower()
        if name not in fields:
            close = difflib.get_close_matches(name.upper(), [n.upper() for n in fields], n=2)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            problems.append(f"{where}: unknown knob {key}{hint}")
            continue
        if type(getattr(defaults, name)) is int and isinstance(value, str):
            try:
                value = parse_int(value)  # "2**252", as a flag may say it
            except argparse.ArgumentTypeError as exc:
                problems.append(f"{where}: {name.upper()}: {exc}")
                continue
        changes[name] = value
    if problems:
        raise ScenarioError(problems)
    return changes  # the values' types are checked with the rest (config.problems)
