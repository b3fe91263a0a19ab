#!/usr/bin/env bash
# Provides the helm binary for the chart tests and prints its path on stdout
# (progress goes to stderr).
#
#   1. $HELM, if it is an executable, is used as is.
#   2. Otherwise helm is built once with the Go toolchain from its published
#      Go module (helm.sh/helm/v3) and cached outside the work tree in
#      ${XDG_CACHE_HOME:-~/.cache}/resumable-batch/tools/helm-<version>/.
#      Later runs print the cached binary at once.
#
# Options: --cached-only  print the path only if nothing must be built
#                         (exit 3 otherwise); never builds.
# Version: $HELM_VERSION (default below); bump it here.
set -euo pipefail

version="${HELM_VERSION:-v3.22.0}"
cached_only=false
[[ "${1:-}" == "--cached-only" ]] && cached_only=true

log() { printf 'tools/helm.sh: %s\n' "$*" >&2; }

if [[ -n "${HELM:-}" && -x "${HELM}" ]]; then
    echo "$HELM"
    exit 0
fi

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/resumable-batch/tools"
out="$cache_root/helm-$version"

if [[ -x "$out/helm" ]]; then
    echo "$out/helm"
    exit 0
fi
if $cached_only; then
    log "not built yet: $out/helm"
    exit 3
fi

if ! command -v go >/dev/null 2>&1; then
    log "the Go toolchain is needed to build helm (or set HELM to a helm binary)"
    exit 2
fi

mkdir -p "$cache_root"
# One build at a time (pytest workers, make and CI may race for it).
exec 9>"$cache_root/.helm.lock"
flock 9
if [[ -x "$out/helm" ]]; then  # built by whoever held the lock
    echo "$out/helm"
    exit 0
fi

staging="$(mktemp -d "$cache_root/.building.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

# `go install module@version` resolves helm's own go.mod and go.sum (checked
# against the checksum database); it never touches a go.mod in the work tree.
# GOTOOLCHAIN=local: build with the installed Go, never fetch another one.
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0
export GOBIN="$staging"

# The ldflags helm's own Makefile sets: the version `helm version` reports, and the
# Kubernetes version `helm template` and `helm lint` assume without a cluster
# (client-go v0.N.x means Kubernetes 1.N; without them helm assumes v1.20.0 and
# rejects charts that declare a newer kubeVersion).
gomod="$(cd "$staging" && go mod download -json "helm.sh/helm/v3@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
client_go="$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$gomod")"  # e.g. v0.37.0
if [[ ! "$client_go" =~ ^v0\.([0-9]+)\. ]]; then
    log "cannot read the k8s.io/client-go version from $gomod"
    exit 2
fi
k8s_minor="${BASH_REMATCH[1]}"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
ldflags+=" -X helm.sh/helm/v3/internal/version.metadata="
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

start=$SECONDS
log "building helm $version (first run only; a few minutes on 2 cores) ..."
(cd "$staging" && go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$version")
log "helm built in $((SECONDS - start))s"
"$staging/helm" version --short >&2

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$staging" "$out"
trap - EXIT
echo "$out/helm"
