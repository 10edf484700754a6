"""The knobs as command-line flags (``--employees-num 20``)."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
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
    """constants.py's scenario, then a ``--scenario`` file's knobs (if the command has
    that flag), then the knob flags. Raises ScenarioError for a bad scenario file."""
    base = default_scenario()
    if getattr(args, "scenario", None):
        from simulation.config.scenario_file import read_scenario_file

        base = base.replace(**read_scenario_file(args.scenario))
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(Scenario)
               if getattr(args, f.name, None) is not None}
    return base.replace(**changes)


class FlagParser(argparse.ArgumentParser):
    """Whole flag names only (``--employees`` is not ``--employees-num``), and one line
    per problem instead of the whole usage: an unknown flag with the closest known ones,
    a bad value with what is wrong."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(allow_abbrev=False, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: list[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            self.exit(2, "".join(f"error: {line}\n" for line in self.unknown(extra)))
        return parsed

    def unknown(self, extra: list[str]) -> list[str]:
        """One line per word that is not one of this command's flags (a flag's value is
        skipped)."""
        known = [o for action in self._actions for o in action.option_strings
                 if o.startswith("--")]
        lines, after_flag = [], False
        for word in extra:
            if word.startswith("-"):
                flag = word.split("=", 1)[0]
                close = difflib.get_close_matches(flag, known, n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else " (see --help)"
                lines.append(f"unknown flag {flag}{hint}")
                after_flag = "=" not in word
            elif not after_flag:
                lines.append(f"unexpected argument {word!r}: every option is a --flag VALUE")
            else:
                after_flag = False
        return lines
