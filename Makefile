# Two commands: `make run` starts the server, `make test` runs lint, types and every test.
# Both install whatever is missing first (Debian packages, the virtual environment).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# Debian packages the server uses at run time (offline speech synthesis and translation),
# and the extra ones the tests drive (a real Chromium, a real Redis, and the deployment tools
# that check deploy/: promtool and Prometheus, Compose, kubectl's kustomize, coturn for TURN).
RUN_DEBS  := espeak-ng apertium apertium-eng-spa
TEST_DEBS := chromium redis-server prometheus docker-compose coturn
# Any kubectl renders kustomize; Debian's is kubernetes-client, installed only when none is found.
KUBECTL_DEB := $(if $(shell command -v kubectl),,kubernetes-client)

.PHONY: run models test test-deploy lint types unit bench webgen install install-test clean

run: install
	$(BIN)/callserver serve

# Translation beyond English<->Spanish (Vietnamese...) needs a model, fetched once where the hub
# is reachable: NLLB-200 600M (623 MB, CC-BY-NC-4.0: non-commercial use only) and the Vietnamese
# Piper voice (CC-BY-4.0). `make models MODELS="m2m100-418M ..."` fetches others (MIT: M2M-100,
# with CALLSERVER_MT_ENGINES=apertium,m2m100); `callserver models list` names them all.
MODELS ?= nllb-200-distilled-600M vi_VN-vais1000-medium
models: install
	for model in $(MODELS); do $(BIN)/callserver models pull $$model || exit 1; done

test: install-test
	scripts/ensure-redis.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

# The container image and the Swarm stack on a real Docker engine (as root, minutes; not part
# of `make test`): scripts/test-deploy.sh says what it builds, runs and removes.
test-deploy: install-test
	scripts/ensure-debs.sh docker.io mmdebstrap
	scripts/test-deploy.sh

lint: install-test
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

types: install-test
	$(BIN)/mypy

bench: install-test
	$(BIN)/python -m bench

# web/generated.js: the error codes, protocol version, room-id and name rules and limits the
# page shares with the server, written from their Python definitions (tests/test_webgen.py
# fails while the checked-in file is stale).
webgen: install
	$(BIN)/python -m signaling.webgen

install: $(VENV)/.installed-run
install-test: $(VENV)/.installed-test

$(VENV)/.debs-run:
	scripts/ensure-debs.sh $(RUN_DEBS)
	@mkdir -p $(VENV) && touch $@

$(VENV)/.debs-test:
	scripts/ensure-debs.sh $(RUN_DEBS) $(TEST_DEBS) $(KUBECTL_DEB)
	@mkdir -p $(VENV) && touch $@

$(VENV)/bin/python:
	scripts/ensure-python.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml $(VENV)/bin/python $(VENV)/.debs-run
	$(BIN)/pip install --quiet -e '.[offline-models]'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/bin/python $(VENV)/.debs-test
	$(BIN)/pip install --quiet -e '.[offline-models,test]'
	touch $@ $(VENV)/.installed-run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
