"""The package layout is the architecture: imports between the sub-packages flow one way
(net -> node -> ml -> protocol -> config), and the pure layers stay pure (no pipes,
processes, clocks, logging handlers or TensorFlow in protocol/ and node/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "simulation"

# layer -> the layers it may import (itself included). Top-level modules count as
# layers of their own: config (the knobs), constants (the scenario file), the ``sweep``
# shim behind ``python -m simulation.sweep``, ``cli`` (main.py's command), and the light
# entry points of the commands (``commands``, ``__main__`` for ``python -m simulation``).
ALLOWED = {
    "constants": {"constants"},
    "config": {"config", "constants"},
    "protocol": {"protocol", "config", "constants"},
    "ml": {"ml", "protocol", "config", "constants"},
    "node": {"node", "ml", "protocol", "config", "constants"},
    "report": {"report", "protocol", "config", "constants"},
    "net": {"net", "node", "ml", "report", "protocol", "config", "constants"},
    "experiments": {"experiments", "config", "constants"},
    "sweep": {"sweep", "experiments"},
    "cli": {"cli", "net", "config", "constants"},
    "commands": {"commands", "cli", "sweep", "experiments"},
    "__main__": {"__main__", "commands", "cli"},
}

# Modules the pure layers must never import, directly or by a submodule of theirs.
IMPURE = ("multiprocessing", "subprocess", "threading", "time", "signal", "socket",
          "logging", "tensorflow", "keras", "numpy", "os")


def _layer_of(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[str, int]]:
    """(fully qualified module, line) of every import in the file, relative ones resolved."""
    found = []
    package = ["simulation", *path.relative_to(root).parts[:-1]]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "simulation":  # from simulation import config
                found += [(f"simulation.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((module, node.lineno))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_belongs_to_a_known_layer() -> None:
    layers = {_layer_of(p) for p in MODULES if p.name != "__init__.py" or p.parent != PACKAGE}
    assert layers <= set(ALLOWED), f"unknown layers: {sorted(layers - set(ALLOWED))}"
    assert {"protocol", "ml", "node", "net", "report", "experiments"} <= layers


def _wrong_imports(path: Path, root: Path = PACKAGE) -> list[str]:
    layer = _layer_of(path, root)
    wrong = []
    for module, line in _imports(path, root):
        parts = module.split(".")
        if parts[0] == "simulation" and len(parts) >= 2 and \
                parts[1] not in ALLOWED.get(layer, set()):
            wrong.append(f"line {line}: {layer} imports {module}")
        if layer in ("protocol", "node") and parts[0] in IMPURE:
            wrong.append(f"line {line}: {layer} is pure but imports {module}")
    return wrong


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way_and_pure_layers_stay_pure(path: Path) -> None:
    wrong = _wrong_imports(path)
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_wrong_imports(tmp_path: Path) -> None:
    """The check above must be able to fail: a protocol module importing the network and
    multiprocessing, with an absolute and a relative import."""
    probe = tmp_path / "protocol" / "probe.py"
    probe.parent.mkdir()
    probe.write_text("from simulation.net.runner import run\nimport multiprocessing\n"
                     "from ..node import employee\nfrom . import chain\n")
    assert _imports(probe, tmp_path) == [
        ("simulation.net.runner", 1), ("multiprocessing", 2), ("simulation.node", 3),
        ("simulation.protocol", 4)]
    assert _wrong_imports(probe, tmp_path) == [
        "line 1: protocol imports simulation.net.runner",
        "line 2: protocol is pure but imports multiprocessing",
        "line 3: protocol imports simulation.node"]


def _employee_subclasses(path: Path) -> list[str]:
    """Classes in the file that derive from Employee (by name, as the code writes it)."""
    return [f"line {node.lineno}: {node.name}({', '.join(ast.unparse(b) for b in node.bases)})"
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.ClassDef)
            and any(ast.unparse(b).split(".")[-1] == "Employee" for b in node.bases)]


def test_roles_are_behaviours_not_employee_subclasses() -> None:
    """A role's difference from the honest employee is a small ``Behaviour`` passed to
    the one ``Employee`` class (node.behaviour), never a subclass that overrides its
    private methods."""
    found = [f"{p.relative_to(PACKAGE)} {c}" for p in MODULES for c in _employee_subclasses(p)]
    assert not found, "\n".join(found)


def test_the_subclass_check_sees_a_subclass(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from simulation.node import employee\n"
                     "class A(employee.Employee):\n    pass\nclass B(Behaviour):\n    pass\n")
    assert _employee_subclasses(probe) == ["line 2: A(employee.Employee)"]


def test_the_shared_conductor_keeps_no_clock_pipe_or_log() -> None:
    """The backends are a transport and a clock over one conductor: its module imports
    no clock, process, pipe, Ray or logging (pacing, progress lines and the wall-clock
    guard are the driver's ``watch.Watch``)."""
    path = PACKAGE / "net" / "conductor.py"
    wrong = [f"line {line}: {module}" for module, line in _imports(path)
             if module.split(".")[0] in {*IMPURE, "ray"}]
    assert not wrong, "\n".join(wrong)


TEXT_KNOB_PARSERS = {"parse_adversaries", "parse_open_rules", "parse_latency",
                     "parse_partitions", "parse_churn", "parse_hardware", "hardware_profiles"}


def _parsers_used(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return sorted({f"line {node.lineno}: {name}" for node in ast.walk(tree)
                   for name in ([a.name for a in node.names]
                                if isinstance(node, ast.ImportFrom) else
                                [node.attr] if isinstance(node, ast.Attribute) else [])
                   if name in TEXT_KNOB_PARSERS})


def test_the_text_knobs_are_parsed_only_by_the_scenario() -> None:
    """Outside config/ the parsed values are read from the scenario (``adversary_counts``,
    ``speed_factors``, ``latency_model`` ...), never parsed again from the text."""
    found = [f"{p.relative_to(PACKAGE)} {use}" for p in MODULES
             if p.relative_to(PACKAGE).parts[0] != "config" for use in _parsers_used(p)]
    assert not found, "\n".join(found)


def test_the_parser_check_sees_a_parser(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from simulation.config import parse_latency, Scenario\n"
                     "import simulation.config as c\nc.parse_churn('', 3)\n")
    assert _parsers_used(probe) == ["line 1: parse_latency", "line 3: parse_churn"]


def _own_layer(path: Path) -> str | None:
    """The sub-package of simulation/ that ``path`` belongs to (None outside one)."""
    parts = path.relative_to(ROOT).parts
    return parts[1] if parts[0] == "simulation" and len(parts) > 2 else None


def test_no_script_edits_sys_path_and_nothing_imports_a_private_name_across_packages():
    """Scripts import the package as installed (make setup installs the checkout
    editable), and what one sub-package keeps private stays private to it."""
    files = [ROOT / "main.py", *sorted((ROOT / "scripts").glob("*.py")),
             *sorted((ROOT / "examples").glob("*.py")), *sorted(PACKAGE.rglob("*.py"))]
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "path" and isinstance(node.value.value, ast.Name)
                    and node.value.value.id == "sys"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: sys.path.{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("simulation"):
                parts = (node.module or "").split(".")
                layer = parts[1] if len(parts) > 2 else None
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and layer != _own_layer(path):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                     f"{node.module}.{alias.name}")
    assert found == []
