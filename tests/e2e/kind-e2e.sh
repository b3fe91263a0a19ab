#!/usr/bin/env bash
# End to end on kind: the steps of docs/walkthrough.md, typed by a script, then checked.
#
#   bash tests/e2e/kind-e2e.sh        # or: make e2e (through pytest, which skips cleanly)
#
# kind create cluster, build the operator and worker images and load them into the
# cluster, helm install the chart, apply examples/summarizer-batch.yaml (its worker
# kills itself after item 20), wait until the batch Succeeded, check that the second
# pod resumed at item 21, helm uninstall, delete the cluster.
#
# Exit codes: 0 passed, 1 failed, 3 skipped (docker, kind, kubectl or helm missing; the
# reason is the last line on stderr).
#
# Environment: KIND_CLUSTER_NAME (resumable-batch-e2e), E2E_KEEP_CLUSTER=1 keeps the
# cluster for debugging, E2E_ARTIFACTS=<dir> receives `kind export logs` on failure,
# HELM=<helm binary> (else tests/tools/helm.sh), E2E_TIMEOUT (300s, for the batch).
# The cluster's kubeconfig lives in a temporary file: yours is never touched.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

cluster="${KIND_CLUSTER_NAME:-resumable-batch-e2e}"
timeout="${E2E_TIMEOUT:-300s}"

say() { printf '\n==> %s\n' "$*" >&2; }
skip() { printf 'e2e skipped: %s\n' "$*" >&2; exit 3; }

# ---- prerequisites ---------------------------------------------------------------------------
command -v docker >/dev/null 2>&1 || skip "docker is not installed"
docker_error="$(docker info 2>&1 >/dev/null)" || skip "the docker daemon is not reachable ($(printf '%s' "$docker_error" | tail -n 1))"
command -v kind >/dev/null 2>&1 || skip "kind is not installed (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
command -v kubectl >/dev/null 2>&1 || skip "kubectl is not installed"
if [[ -z "${HELM:-}" ]]; then
    HELM="$(bash tests/tools/helm.sh)" || skip "helm is not available (tests/tools/helm.sh needs Go, or set HELM)"
fi
# The walkthrough says `helm`; this is the same command with the pinned binary.
helm() { "$HELM" "$@"; }

KUBECONFIG="$(mktemp -t resumable-batch-e2e.kubeconfig.XXXXXX)"
export KUBECONFIG

passed=false
cleanup() {
    local status=$?
    if ! $passed; then
        say "FAILED; what the cluster looked like"
        kubectl get rb,pods,events -A -o wide 2>&1 | tail -n 60 >&2 || true
        kubectl -n resumable-system logs deploy/resumable-batch --tail=100 >&2 || true
        kubectl logs -l resumable.dev/batch=summarizer --prefix --tail=40 >&2 || true
        if [[ -n "${E2E_ARTIFACTS:-}" ]]; then
            kind export logs "$E2E_ARTIFACTS" --name "$cluster" >&2 || true
        fi
    fi
    if [[ -n "${E2E_KEEP_CLUSTER:-}" ]]; then
        say "keeping cluster $cluster (KUBECONFIG=$KUBECONFIG)"
    else
        kind delete cluster --name "$cluster" >&2 || true
        rm -f "$KUBECONFIG"
    fi
    exit "$status"
}
trap cleanup EXIT

# ---- the walkthrough (docs/walkthrough.md), step by step -------------------------------------
# walkthrough:begin
say "1. a cluster"
kind create cluster --name "$cluster" --wait 120s

say "2. the images, loaded into the cluster"
docker build -t resumable-batch/operator:dev -f images/operator/Dockerfile .
docker build -t resumable-batch/worker:dev -f images/worker/Dockerfile .
kind load docker-image resumable-batch/operator:dev resumable-batch/worker:dev --name "$cluster"

say "3. the operator"
helm install resumable-batch charts/resumable-batch --namespace resumable-system --create-namespace --set image.tag=dev --wait --timeout 5m

say "4. the example batch: its worker kills itself after item 20"
kubectl apply -f examples/summarizer-batch.yaml
kubectl wait rb/summarizer --for=condition=Succeeded --timeout="$timeout"

say "5. what happened"
kubectl get rb summarizer
kubectl logs summarizer-2
# walkthrough:end

# ---- checks ----------------------------------------------------------------------------------
say "checking the outcome"
fail() { printf 'e2e FAILED: %s\n' "$*" >&2; exit 1; }

first_exit="$(kubectl get pod summarizer-1 -o jsonpath='{.status.containerStatuses[0].state.terminated.exitCode}')"
[[ "$first_exit" == "137" ]] || fail "the first worker should have been killed (exit 137), got '$first_exit'"
# (here-strings, not pipes: `grep -q` closing a pipe early would fail it under pipefail)
grep -q "item 20 committed" <<<"$(kubectl logs summarizer-1)" || fail "the first worker did not reach item 20"
grep -q "resuming at item 21/50" <<<"$(kubectl logs summarizer-2)" || fail "the second worker did not resume at item 21/50"
restarts="$(kubectl get rb summarizer -o jsonpath='{.status.restarts}')"
[[ "$restarts" == "1" ]] || fail "expected 1 restart, got '$restarts'"
progress="$(kubectl get rb summarizer -o jsonpath='{.status.progress}')"
[[ "$progress" == 50/50* ]] || fail "expected 50/50 items done, got '$progress'"

# walkthrough:begin
say "6. clean up"
kubectl delete -f examples/summarizer-batch.yaml
helm uninstall resumable-batch --namespace resumable-system --wait
# walkthrough:end
kubectl get crd resumablebatches.resumable.dev >/dev/null || fail "crds.keep should have kept the CRD"
# walkthrough:begin
kind delete cluster --name "$cluster"
# walkthrough:end

passed=true
say "e2e passed: killed after item 20, resumed at 21, succeeded"
