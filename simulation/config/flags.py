"""The knobs as command-line flags (``--employees-num 20``)."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
from collections.abc import Sequence
from typing import Any

from simulation.config.checks import problems
from simulation.config.knobs import (
    Scenario,
    ScenarioError,
    default_scenario,
    knob_comments,
    knob_text,
)

_POWER = re.compile(r"^\s*(\d+)\s*\*\*\s*(\d+)\s*$")
_MISSING = object()  # the default of a required flag while it is parsed


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


def scenario_problems(args: argparse.Namespace) -> list[str]:
    """What the checks say of the scenario the parsed flags give, for a command line
    that has problems of its own: one try then shows them all. A flag whose value did
    not parse counts as not given."""
    try:
        return problems(scenario_from_args(args))
    except ScenarioError as exc:  # the --scenario file's
        return exc.problems


class FlagParser(argparse.ArgumentParser):
    """Whole flag names only (``--employees`` is not ``--employees-num``), and every
    problem of a command line at once, one line each, instead of the usage: an unknown
    flag with the closest known ones, a stray word, a bad value (argparse would stop at
    the first), a missing required flag."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(allow_abbrev=False, **kwargs)  # type: ignore[arg-type]
        self._bad_values: list[str] = []

    def error(self, message: str) -> None:  # type: ignore[override]
        # What argparse cannot parse past (a flag without its value): the values found
        # bad before it are still said.
        lines = [*self._bad_values, f"{message} (see {self.prog} --help)"]
        self.exit(2, "".join(f"error: {line}\n" for line in lines))

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        parsed, problems = self.parse_args_and_problems(args, namespace)
        if problems:
            self.exit(2, "".join(f"error: {line}\n" for line in problems))
        return parsed

    def parse_args_and_problems(self, args: Sequence[str] | None = None,
                                namespace: argparse.Namespace | None = None
                                ) -> tuple[argparse.Namespace, list[str]]:
        """The parsed flags and every problem of the command line, one line each, for a
        caller that adds its own checks to the same list. A flag whose value is bad or
        missing keeps its default."""
        self._bad_values = []
        # Required flags are checked here, after the parse: argparse's own check stops
        # it and hides every other problem.
        required = [action for action in self._actions
                    if action.required and action.option_strings]
        defaults = {action.dest: action.default for action in required}
        for action in required:
            action.required, action.default = False, _MISSING
        try:
            parsed, extra = self.parse_known_args(args, namespace)
        finally:
            for action in required:
                action.required, action.default = True, defaults[action.dest]
        problems = [*self._bad_values, *self.unknown(extra)]
        for action in required:
            if getattr(parsed, action.dest, None) is _MISSING:
                value = f" {action.metavar}" if isinstance(action.metavar, str) else ""
                problems.append(f"the flag {action.option_strings[0]}{value} is required")
                setattr(parsed, action.dest, defaults[action.dest])
        return parsed, problems

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        # A bad value is noted and the parse goes on (argparse would end it here): the
        # flag keeps its default, as if it had not been given.
        try:
            return super()._get_value(action, arg_string)
        except argparse.ArgumentError as exc:
            self._bad_values.append(str(exc))
            return action.default

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
