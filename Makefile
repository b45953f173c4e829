# Two entry points that do all set-up on a fresh machine:
#   make demo   - create .venv if missing, install splitnet, run the demo
#   make test   - create .venv if missing, install splitnet with dev and ray extras, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint proto report clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,ray]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/splitnet demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

proto: $(VENV)/.installed-dev
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --grpc_python_out=. --pyi_out=. \
		proto/splitnet/rpc/v1/splitnet.proto

report: $(VENV)/.installed-dev  # measure every report again (minutes to hours) and rewrite the README's tables
	PY=$(BIN)/python scripts/run_reports.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out .pytest_cache
