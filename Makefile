# The two commands of the README: `make run` (main job) and `make test` (the test suite).
# Both create .venv/ at the repository root and install livn with everything it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.livn-installed

.PHONY: run test test-fast benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"livn needs Python 3.11, found {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Main job: build the default system (EI2) into out/EI2, summarise and draw it, then simulate
# 2 s of spontaneous activity with Brian2: out/EI2-run/{spikes.h5, raster.png}.
run: $(STAMP)
	$(BIN)/livn build EI2 -o out/EI2
	$(BIN)/livn inspect out/EI2 --plot out/EI2.png
	$(BIN)/livn run out/EI2 --duration 2000 -o out/EI2-run

# Everything, slow tests included (what CI runs).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not mpi"
	$(BIN)/python -m pytest -m mpi

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not slow and not mpi"

benchmark: $(STAMP)
	$(BIN)/python benchmarks/build.py
	$(BIN)/python benchmarks/simulate_brian2.py
	$(BIN)/python benchmarks/simulate_neuron.py
	$(BIN)/python benchmarks/aims.py

clean:
	rm -rf out
