# Two entry points: `make demo` (install + run the method on the demo zoo and Fashion-MNIST) and `make test`.
# Everything installs into .venv; Fashion-MNIST comes from Debian's dataset-fashion-mnist package.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: install data demo test lint docs

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -d "$(VENV)/lib" || bash scripts/check-disk.sh "$(VENV)" 6.5
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.14.1 torchvision==0.29.1
	$(PIP) -e '.[test,export,ray,hub,docs]'
	touch $@

data:
	bash scripts/install-fashion-mnist.sh

demo: install data
	$(BIN)/zoofit run --data fashion-mnist --zoo demo --out runs/demo

test: install data
	$(BIN)/python -m pytest

docs: install
	$(BIN)/mkdocs serve

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
