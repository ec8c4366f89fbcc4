# Two commands do everything on a fresh clone: `make run` and `make test`.
# Both create .venv and install the project into it first (once): `make run` what
# running needs (the package and its export extra), `make test` the test tooling too.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint unit repro serve bench setup setup-dev clean
setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

# Set-up also makes Prefect's database (in PREFECT_HOME, ~/.prefect by default):
# left to the first run's server start, its migrations add 6 s to that run.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[export]'
	test -n "$$PREFECT_API_URL" || $(VENV)/bin/prefect server database upgrade -y > /dev/null
	@# vega for `dvc plots show` offline, from the npm registry (lifecycle/plots_page.py); without npm, DVC's CDN page
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m lifecycle.plots_page || true
	touch $@

# The tests' and benchmarks' own tools: selenium, moto, pytest, torchvision, ...
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

run: setup  ## train, evaluate and plot through the Prefect flow, on params.yaml
	$(PY) -m flows.training

test: setup-dev lint  ## the lint, then the whole test suite (CI runs exactly this)
	$(PY) -m pytest -q -n 2 --dist loadgroup --durations=20

lint: setup-dev  ## ruff, with the rules pyproject.toml names
	$(PY) -m ruff check .

unit: setup-dev  ## tests/unit: in-process, nothing started, no real data; under a minute, the inner loop
	$(PY) -m pytest -q -n 2 -p no:schemathesis -p no:hydra_pytest tests/unit

repro: setup  ## the same pipeline through DVC
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro

serve: setup  ## the champion (else outputs/model.pt) over HTTP, with a page to draw on
	$(PY) -m serving.service

bench: setup-dev  ## speed against the original recipe (see bench/README.md)
	$(PY) -m bench.speed

clean:
	rm -rf outputs
