"""The summary's typed sections (report/sections.py): each reads back from a summary
exactly what it wrote, and the console summary is composed of their lines."""

from __future__ import annotations

import pytest

from simulation.config import default_scenario
from simulation.net.lockstep import network_result, run_lockstep
from simulation.node.adversaries import assign_adversaries
from simulation.node.genesis import genesis_of
from simulation.report import sections
from simulation.report.reporting import render, summarize

SECTIONS = [sections.ChainSection, sections.AgreementSection, sections.MessagesSection,
            sections.NetworkSection, sections.FairnessSection, sections.TrainingSection,
            sections.EmployerSection, sections.CoinsSection]


@pytest.fixture(scope="module")
def summary():
    scenario = default_scenario().replace(trainer="hash", adversaries="poisoned:2,lazy:1",
                                          hardware="fast:3", log_file="unused.log", seed=3)
    run = run_lockstep(scenario)
    return summarize(scenario, genesis_of(scenario), network_result(run),
                     assign_adversaries(scenario), 0.0)


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.__name__)
def test_each_section_reads_back_what_it_wrote(summary, section):
    part = section.from_summary(summary)
    assert part is not None
    written = part.to_json()
    assert written == {key: summary[key] for key in written}
    assert list(written) and all(key in summary for key in written)


def test_the_console_summary_holds_every_sections_lines(summary):
    text = render(summary).splitlines()
    for section in SECTIONS:
        part = section.from_summary(summary)
        lines = part.lines("hash") if section is sections.EmployerSection else part.lines()
        assert lines, section.__name__
        at = text.index(lines[0])
        assert text[at:at + len(lines)] == lines, section.__name__


def test_a_summary_without_network_or_fairness_renders_without_them(summary):
    bare = {**summary, "network": None, "fairness": None}
    text = render(bare)
    assert "Propagation:" not in text and "Fairness:" not in text
    assert "Chain of" in text
