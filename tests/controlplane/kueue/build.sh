#!/usr/bin/env bash
# Provides Kueue's controller manager for the integration tests and prints the
# directory that holds it on stdout (progress goes to stderr). The directory has
#   kueue          the manager, built from sigs.k8s.io/kueue/cmd/kueue
#   crd/           the release's CRDs (config/components/crd/bases)
#   webhook.yaml   its webhook configurations (config/components/webhook/manifests.yaml)
#
#   1. $KUEUE_ASSETS, if it holds those, is used as is.
#   2. Otherwise the manager is built once with the Go toolchain from the
#      published module, through the wrapper module next to this script (its
#      go.mod pins sigs.k8s.io/kueue and go.sum every dependency), and cached
#      outside the work tree in ${XDG_CACHE_HOME:-~/.cache}/resumable-batch/kueue/<version>/.
#      Later runs print the cached directory at once.
#
# Options: --cached-only  print the directory only if nothing must be built
#                         (exit 3 otherwise); never builds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cached_only=false
[[ "${1:-}" == "--cached-only" ]] && cached_only=true

log() { printf 'controlplane/kueue/build.sh: %s\n' "$*" >&2; }

complete() { [[ -x "$1/kueue" && -d "$1/crd" && -f "$1/webhook.yaml" ]]; }

if [[ -n "${KUEUE_ASSETS:-}" ]] && complete "$KUEUE_ASSETS"; then
    echo "$KUEUE_ASSETS"
    exit 0
fi

version="$(awk '($1 == "require" && $2 == "sigs.k8s.io/kueue") {print $3; exit} ($1 == "sigs.k8s.io/kueue" && $2 ~ /^v/) {print $2; exit}' "$here/go.mod")"
if [[ -z "$version" ]]; then
    log "cannot read the pinned sigs.k8s.io/kueue version from $here/go.mod"
    exit 2
fi

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/resumable-batch/kueue"
out="$cache_root/$version"

if complete "$out"; then
    echo "$out"
    exit 0
fi
if $cached_only; then
    log "not built yet: $out"
    exit 3
fi
if ! command -v go >/dev/null 2>&1; then
    log "the Go toolchain is needed to build Kueue (or set KUEUE_ASSETS)"
    exit 2
fi

mkdir -p "$cache_root"
# One build at a time (pytest workers, make and CI may race for it).
exec 9>"$cache_root/.build.lock"
flock 9
if complete "$out"; then  # built by whoever held the lock
    echo "$out"
    exit 0
fi

staging="$(mktemp -d "$cache_root/.building.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

# -mod=readonly: go.sum pins every dependency, nothing is resolved anew.
# GOTOOLCHAIN=local: build with the installed Go, never fetch another toolchain.
export GOFLAGS="-mod=readonly"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

start=$SECONDS
log "building Kueue $version (first run only; several minutes on 2 cores) ..."
(cd "$here" && go build -ldflags "-s -w" -o "$staging/kueue" sigs.k8s.io/kueue/cmd/kueue)
log "Kueue built in $((SECONDS - start))s"

src="$(cd "$here" && go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"
cp -r "$src/config/components/crd/bases" "$staging/crd"
cp "$src/config/components/webhook/manifests.yaml" "$staging/webhook.yaml"
chmod -R u+w "$staging"

rm -rf "$out"
mv "$staging" "$out"
trap - EXIT
echo "$out"
