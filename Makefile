# resumable-batch: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

.PHONY: help
help: ## Show this help.
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

.PHONY: install
install: $(PY) ## Create .venv and install the package with the operator and dev extras.
	$(PY) -m pip install --quiet -e '.[operator,dev]'

.PHONY: demo
demo: ## Run the example agent locally: crash after item 20, resume at item 21.
	$(VENV)/bin/resumable demo

.PHONY: controlplane
controlplane: ## Build (or reuse from cache) kube-apiserver and etcd for the integration tests.
	bash tests/controlplane/build.sh

.PHONY: helm
helm: ## Build (or reuse from cache) the helm binary for the chart tests.
	bash tests/tools/helm.sh

.PHONY: kueue
kueue: ## Build (or reuse from cache) Kueue's controller manager for the integration tests.
	bash tests/controlplane/kueue/build.sh

.PHONY: test
test: controlplane helm kueue ## Run every test tier (unit, integration, reliability; e2e skips without Docker).
	KUBEBUILDER_ASSETS="$$(bash tests/controlplane/build.sh)" HELM="$$(bash tests/tools/helm.sh)" \
		KUEUE_ASSETS="$$(bash tests/controlplane/kueue/build.sh)" $(PYTEST) tests --durations=20

# The reliability tests (tests/reliability, also part of `make test`), each recording its
# one-line figure in a JSON-lines file, rendered into docs/reliability.md. By hand:
# RELIABILITY_KILL_TRIALS=300 make reliability.
.PHONY: reliability
reliability: controlplane helm ## Run tests/reliability and write their figures to docs/reliability.md.
	figures=$$(mktemp) && trap 'rm -f "$$figures"' EXIT && \
		KUBEBUILDER_ASSETS="$$(bash tests/controlplane/build.sh)" HELM="$$(bash tests/tools/helm.sh)" \
		RELIABILITY_FIGURES="$$figures" $(PYTEST) tests/reliability --durations=10 && \
		$(PY) tests/reliability/report.py "$$figures" docs/reliability.md

# The lowest kubernetes client pyproject.toml allows (its `kubernetes>=N` lines, which
# must agree), and the tests of every call we make into that client: the SDK's KubeApi,
# the operator's leader election and the CLI against the real server, and the client's
# own retries and timeouts on kmock. Its own venv, inside $(VENV) so nothing else sees it.
KUBERNETES_FLOOR = $(shell sed -n 's/^ *"kubernetes>=\([0-9][0-9.]*\)",.*/\1/p' pyproject.toml | sort -u)
FLOOR_VENV ?= $(VENV)/floor
FLOOR_TESTS := tests/unit/sdk/test_kubeapi_error_classes.py tests/integration/test_kube_store.py \
	tests/integration/test_kubeapi_errors.py tests/integration/test_leader.py \
	tests/integration/test_cli.py tests/reliability/test_client_faults.py \
	tests/reliability/test_kube_store_faults.py

.PHONY: test-floor
test-floor: controlplane ## Run the client-facing tests on the lowest kubernetes client pyproject allows.
	$(if $(filter 1,$(words $(KUBERNETES_FLOOR))),,$(error pyproject.toml: one kubernetes>=N floor expected, found '$(KUBERNETES_FLOOR)'))
	python3 -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet -e '.[operator,dev]' 'kubernetes==$(KUBERNETES_FLOOR)'
	$(FLOOR_VENV)/bin/python -c 'import kubernetes; print("kubernetes client", kubernetes.__version__)'
	KUBEBUILDER_ASSETS="$$(bash tests/controlplane/build.sh)" \
		$(FLOOR_VENV)/bin/python -m pytest $(FLOOR_TESTS) --durations=5

.PHONY: test-unit
test-unit: ## Run only the fast unit tests.
	$(PYTEST) -m unit tests

.PHONY: lint
lint: ## ruff, mypy --strict and the import contracts (lint-imports) on every package.
	$(VENV)/bin/ruff check sdk operator tests bench
	$(VENV)/bin/ruff format --check sdk operator tests bench
	$(VENV)/bin/mypy --strict sdk/resumable operator/resumable_core operator/resumable_runner \
		operator/resumable_cli operator/resumable_operator
	$(VENV)/bin/lint-imports

.PHONY: format
format: ## Reformat the code with ruff.
	$(VENV)/bin/ruff format sdk operator tests bench
	$(VENV)/bin/ruff check --fix sdk operator tests bench

.PHONY: pod-schema
pod-schema: ## Regenerate the Pod schema `resumable run` checks templates against (from the kubernetes client).
	$(PY) -m resumable_runner.podschema_gen

.PHONY: crds
crds: ## Regenerate crds/ (and the chart's CRD template) from the pydantic models.
	$(PY) -m resumable._crd --out-dir crds
	bash tests/tools/chart-crds.sh

.PHONY: verify
verify: crds ## Regenerate everything and fail if the tree changed.
	@git diff --exit-code -- crds charts || \
		(echo "generated files are out of date: run 'make crds' and commit" && exit 1)

.PHONY: chart-crds
chart-crds: ## Regenerate the chart's CRD template from crds/.
	bash tests/tools/chart-crds.sh

.PHONY: chart-lint
chart-lint: helm ## helm lint --strict the chart.
	"$$(bash tests/tools/helm.sh)" lint --strict charts/resumable-batch

.PHONY: images
images: ## Build the operator and worker images (needs Docker).
	docker build -t resumable-batch/operator:dev -f images/operator/Dockerfile .
	docker build -t resumable-batch/worker:dev -f images/worker/Dockerfile .

.PHONY: e2e
e2e: ## End-to-end test on kind (needs Docker and kind; skips with a reason otherwise).
	$(PYTEST) -m e2e tests/e2e -rs

.PHONY: bench
bench: ## Run the benchmarks by hand (not part of the tests).
	$(PY) bench/sdk_overhead.py
	$(PY) bench/recovery.py
