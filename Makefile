# chargeback-operator: one target per job. `make help` lists them.
SHELL := bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "[make] Creating the Python environment in $(VENV)"
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## Create the Python environment (.venv) with the dev extras

tools: ## Install/build Prometheus, PostgreSQL, etcd, kube-apiserver, helm (idempotent)
	bash hack/tools.sh

lint: venv ## ruff, ruff format --check, mypy strict, import-linter
	$(BIN)/ruff check operator tests benchmarks hack
	$(BIN)/ruff format --check operator tests benchmarks hack
	$(BIN)/mypy
	$(BIN)/lint-imports

format: venv ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix operator tests benchmarks hack
	$(BIN)/ruff format operator tests benchmarks hack

test: venv tools ## Run the whole test suite against real components
	$(BIN)/pytest $(PYTEST_ARGS)

crds: venv ## Regenerate crds/ from the pydantic API models
	$(BIN)/python hack/gen.py crds

golden: venv tools ## Refresh golden files (dashboards, rendered chart); review the diff
	UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/unit/test_dashboards.py tests/e2e/test_chart.py -k golden

FUZZ_EXAMPLES ?= 300

fuzz: venv tools ## Fuzz UsageReports against the API server and operator (FUZZ_EXAMPLES=300)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -s tests/e2e/test_fuzz.py

bench: venv tools ## Run the benchmarks and write docs/benchmarks.md
	$(BIN)/python -m benchmarks.run

demo: venv tools ## Run the local demo (control plane, Prometheus, operator, report)
	$(BIN)/chargeback demo

IMAGE ?=

image: ## Build the operator image with podman (IMAGE=... to tag; default: the project's version)
	bash hack/image.sh $(IMAGE)

REGISTRY ?=
INSECURE ?=
BUNDLE_DIR ?= bundle

bundle: venv tools ## Generate the OLM bundle in bundle/ from the chart and crds/, and validate it (IMAGE=...)
	$(BIN)/python hack/bundle.py --output $(BUNDLE_DIR) --helm "$$(bash hack/tools.sh bin-dir)/helm" $(if $(IMAGE),--image $(IMAGE))
	"$$(bash hack/tools.sh operator-sdk)" bundle validate $(BUNDLE_DIR) --select-optional suite=operatorframework

release: ## Push the image, the chart (OCI) and the OLM bundle: REGISTRY=host:port/path [INSECURE=1]
	REGISTRY='$(REGISTRY)' INSECURE='$(INSECURE)' bash hack/release.sh

clean: ## Remove the Python environment and caches (not the tool cache)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: help venv tools lint format test crds golden fuzz bench demo image bundle release clean
