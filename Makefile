# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

# Re-install only when the declared dependencies change (idempotent and quick otherwise).
# The forecast, dashboard, classifier, sessions and spark extras are installed too, so every registered
# detector, the dashboard, the report, the classifier view, the sessions stage and Spark (local mode,
# Java 17) are tested by `make test`. pyspark comes from PyPI as an sdist; pip builds it once into its
# wheel cache.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,forecast,dashboard,classifier,sessions,spark]'
	touch $(STAMP)

demo: install
	$(BIN)/sleuth demo

# two workers (one per core), a test file each at a time: many tests wait on subprocesses and servers
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

SHARED ?= ../shared/bench
DATA   ?= ../shared/data

# Speed (ingest + cube vs hand-written SQL, detection, demo), the classifier view against Spotlight
# as published on a generated demo shop, the sessions stage on a generated GA360 export (bots, pages
# and shifts against IsolationForest on naive features; 1 M sessions timed), then accuracy on the
# public data in $(SHARED) when it is there (NAB, cloud monitoring, root-cause cases), daily retail
# stores against Prophet with holidays and statsforecast MSTL (generated, with a moving retail calendar
# and a market); Panomaly and root_anom reproduced on the samples in $(DATA) (each says when they are
# absent), root_anom's matrix on a generated shop.
bench: install
	$(BIN)/python -m sleuth.bench.perf
	$(BIN)/sleuth bench classifier
	$(BIN)/sleuth bench formats
	$(BIN)/sleuth bench sessions --scale 1000000
	@if [ -d $(SHARED)/nab ]; then $(BIN)/sleuth bench nab $(SHARED)/nab; else echo "NAB data not present at $(SHARED)/nab: skipped"; fi
	@if [ -d $(SHARED)/ms-cloud-monitoring ]; then $(BIN)/sleuth bench cloud $(SHARED)/ms-cloud-monitoring; else echo "cloud-monitoring data not present: skipped"; fi
	$(BIN)/sleuth bench retail
	$(BIN)/sleuth bench rca $(SHARED)/rca
	$(BIN)/sleuth bench rootanom $(DATA)/lazylantern-root-anom
	$(BIN)/sleuth bench panomaly $(DATA)/lazylantern-panomaly
	$(BIN)/sleuth bench faults --record
	$(BIN)/sleuth bench scale --record

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
