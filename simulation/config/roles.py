"""The roles a party plays (ADVERSARIES names them) and which of them train on poisoned
data."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a party of the run is, by the name ADVERSARIES, the logs and the results use.
    Each role but the employer's is a behaviour of an employee (``node.adversaries``,
    ``node.attacks``); an employee without an adversary role is honest."""

    HONEST = "honest"
    POISONED = "poisoned"
    LAZY = "lazy"
    FORGER = "forger"
    EQUIVOCATOR = "equivocator"
    WITHHOLDER = "withholder"
    SPAMMER = "spammer"
    CRASH = "crash"
    SYBIL = "sybil"
    GRINDER = "grinder"
    POISONED_GRINDER = "poisoned-grinder"
    FLOODER = "flooder"
    SPLITTER = "splitter"
    BACKDATER = "backdater"
    JUNK_FILLER = "junk-filler"
    SELFISH = "selfish"
    EMPLOYER = "employer"  # the light client that delegated the training


# The roles ADVERSARIES may give, in the order its error message lists them.
BEHAVIOURS = tuple(r for r in Role if r not in (Role.HONEST, Role.EMPLOYER))
# Behaviours that train on the poisoned data (and so collude: they accept each other's
# training); reports call their training "poisoned".
POISONED_TRAINING = (Role.POISONED, Role.POISONED_GRINDER)
def training_of(behaviour: str) -> str:
    """The training a behaviour's model comes from: "poisoned" for the poisoned kinds,
    otherwise the behaviour itself."""
    return Role.POISONED if behaviour in POISONED_TRAINING else behaviour
