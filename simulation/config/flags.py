"""The knobs as command-line flags (``--employees-num 20``)."""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

from simulation.config.knobs import Scenario, default_scenario, knob_comments, knob_text

_POWER = re.compile(r"^\s*(\d+)\s*\*\*\s*(\d+)\s*$")


def parse_int(text: str) -> int:
    """An integer, also written as a power (``2**252``), as coinstakes usually are."""
    match = _POWER.match(text)
    if match:
        base, exponent = int(match.group(1)), int(match.group(2))
        if exponent > 4096:
            raise argparse.ArgumentTypeError(f"exponent too large in {text!r}")
        return base**exponent
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def flag_name(knob: str) -> str:
    return "--" + knob.lower().replace("_", "-")


def add_knob_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = default_scenario()
    comments = knob_comments()
    group = parser.add_argument_group("scenario knobs (defaults from simulation/constants.py)")
    for f in dataclasses.fields(Scenario):
        default = getattr(defaults, f.name)
        kind: Any = parse_int if type(default) is int else type(default)
        shown = knob_text(default) if type(default) is int else repr(default)
        group.add_argument(
            flag_name(f.name.upper()), dest=f.name, type=kind, default=None,
            metavar=type(default).__name__.upper(),
            help=f"{comments.get(f.name.upper(), '')} (default: {shown})".replace("%", "%%"),
        )


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    base = default_scenario()
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(Scenario)
               if getattr(args, f.name, None) is not None}
    return base.replace(**changes)
