PY ?= python3.11
TEST_WORKERS ?= 2
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format clean distributed peers

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Ray for `faceapp scan --ray` and its tests (tests/engine/test_distributed.py skip without it)
distributed: $(STAMP)
	$(BIN)/pip install -q -e '.[distributed,test]'

# the app against LibrePhotos' pipeline and stock facenet-pytorch on one album; the peers'
# packages go into their own venv, bench/.peers-venv, made on the first run
peers: $(STAMP)
	$(BIN)/python bench/peers.py

run: $(STAMP)
	$(BIN)/python main.py

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --ignore=tests/gui
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q tests/gui

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) bench/.peers-venv .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info
