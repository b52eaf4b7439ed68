# Two-command quick start: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev

HW       ?= hw_configs/edge.yaml
WORKLOAD ?= workloads/gen.yaml

.PHONY: run test bench clean docs

# `make run` installs what a run needs (the core dependencies); `make test` and `make bench`
# add the test and Dask extras.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(DEV): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,dask]'
	touch $(DEV)

# An editable install leaves the package uncompiled (pip compiles only what it copies), and
# where PYTHONDONTWRITEBYTECODE is set every command would compile it again: ~0.1 s a run.
run: $(STAMP)
	$(PY) -m compileall -q speedsim
	$(VENV)/bin/speedsim run $(HW) $(WORKLOAD) --cache-dir .speedsim-cache

test: $(DEV)
	$(PY) -m pytest

bench: $(DEV)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info

docs: $(STAMP)
	$(PY) -m speedsim.config.reference > docs/config.md
