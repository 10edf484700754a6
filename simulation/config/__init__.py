"""The scenario and its knobs, by concern:

- ``knobs``: ``Scenario`` (one field per knob of constants.py, the text knobs parsed once),
  the defaults and the help texts read from constants.py, and how a value is written;
- ``roles``: the roles ADVERSARIES gives (``Role``);
- ``grammars``: the small grammars of ADVERSARIES, OPEN_RULES, LATENCY, PARTITIONS, CHURN
  and HARDWARE;
- ``checks``: every reason a scenario cannot run, found before any process starts;
- ``flags``: the knobs as command-line flags.

The names below are the package's interface; the rest of the simulator imports them from
here.
"""

from simulation.config.checks import problems, validated
from simulation.config.flags import (
    FlagParser,
    add_knob_arguments,
    flag_name,
    parse_int,
    scenario_from_args,
    scenario_problems,
)
from simulation.config.grammars import (
    COMPUTATION_OF_PROFILE,
    EXACT,
    HARDWARE_PROFILES,
    LATENCY_KINDS,
    MIXED_HARDWARE,
    MNIST_TRAIN_SIZE,
    PROCESS_WIDE_COMPUTATIONS,
    RULE_NAMES,
    SIMULATED_ONLY,
    hardware_profiles,
    parse_adversaries,
    parse_churn,
    parse_hardware,
    parse_latency,
    parse_open_rules,
    parse_partitions,
    speed_factor_of,
)
from simulation.config.knobs import (
    BACKENDS,
    MAX_PROCESS_EMPLOYEES,
    TRAINERS,
    VERIFICATIONS,
    Scenario,
    ScenarioError,
    computation_of,
    default_scenario,
    knob_comments,
    knob_names,
    knob_text,
)
from simulation.config.roles import BEHAVIOURS, POISONED_TRAINING, Role, training_of

__all__ = [
    "BACKENDS", "BEHAVIOURS", "FlagParser", "COMPUTATION_OF_PROFILE", "EXACT", "HARDWARE_PROFILES",
    "LATENCY_KINDS", "MAX_PROCESS_EMPLOYEES", "MIXED_HARDWARE", "MNIST_TRAIN_SIZE",
    "POISONED_TRAINING", "PROCESS_WIDE_COMPUTATIONS", "RULE_NAMES", "SIMULATED_ONLY",
    "problems",
    "TRAINERS", "VERIFICATIONS", "Role", "Scenario", "ScenarioError", "add_knob_arguments",
    "computation_of", "default_scenario", "flag_name", "hardware_profiles", "knob_comments",
    "knob_names", "knob_text", "parse_adversaries", "parse_churn", "parse_hardware",
    "parse_int", "parse_latency", "parse_open_rules", "parse_partitions",
    "scenario_from_args", "scenario_problems", "speed_factor_of", "training_of", "validated",
]
