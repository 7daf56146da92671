# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

# Re-install only when the declared dependencies change (idempotent and quick otherwise).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/sleuth demo

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m sleuth.bench.perf

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
