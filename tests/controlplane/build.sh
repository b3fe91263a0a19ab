#!/usr/bin/env bash
# Provides the control-plane binaries (kube-apiserver, etcd) for the test suite
# and prints the directory that holds them on stdout (progress goes to stderr).
#
#   1. $KUBEBUILDER_ASSETS, if it holds both binaries, is used as is.
#   2. Otherwise they are built once with the Go toolchain from the published
#      Go modules, through the wrapper modules next to this script
#      (kube-apiserver/ requires k8s.io/kubernetes, etcd/ requires
#      go.etcd.io/etcd/server/v3), and cached outside the work tree in
#      ${XDG_CACHE_HOME:-~/.cache}/resumable-batch/controlplane/<version>/.
#      Later runs print the cached directory at once.
#
# Options: --cached-only  print the directory only if nothing must be built
#                         (exit 3 otherwise); never builds.
# Versions come from the wrapper go.mod files: bump them there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cached_only=false
[[ "${1:-}" == "--cached-only" ]] && cached_only=true

log() { printf 'controlplane/build.sh: %s\n' "$*" >&2; }

has_binaries() { [[ -x "$1/kube-apiserver" && -x "$1/etcd" ]]; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && has_binaries "$KUBEBUILDER_ASSETS"; then
    echo "$KUBEBUILDER_ASSETS"
    exit 0
fi

# The version a go.mod requires of a module (single-line or block form).
required() { awk -v m="$2" '($1 == "require" && $2 == m) {print $3; exit} ($1 == m && $2 ~ /^v/) {print $2; exit}' "$1"; }
kube_version="$(required "$here/kube-apiserver/go.mod" k8s.io/kubernetes)"
etcd_version="$(required "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)"
if [[ -z "$kube_version" || -z "$etcd_version" ]]; then
    log "cannot read the pinned versions from the wrapper go.mod files"
    exit 2
fi

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/resumable-batch/controlplane"
out="$cache_root/kube-${kube_version}-etcd-${etcd_version}"

if has_binaries "$out"; then
    echo "$out"
    exit 0
fi
if $cached_only; then
    log "not built yet: $out"
    exit 3
fi

if ! command -v go >/dev/null 2>&1; then
    log "the Go toolchain is needed to build kube-apiserver and etcd (or set KUBEBUILDER_ASSETS)"
    exit 2
fi

mkdir -p "$cache_root"
# One build at a time (pytest workers, make and CI may race for it).
exec 9>"$cache_root/.build.lock"
flock 9
if has_binaries "$out"; then  # built by whoever held the lock
    echo "$out"
    exit 0
fi

staging="$(mktemp -d "$cache_root/.building.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

# The wrapper modules' go.sum pins every dependency; -mod=readonly fails
# rather than silently resolving something else. GOTOOLCHAIN=local: build with
# the installed Go, never fetch another toolchain.
export GOFLAGS="-mod=readonly -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0

start=$SECONDS
log "building etcd $etcd_version (first run only) ..."
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$staging/etcd" .)
log "etcd built in $((SECONDS - start))s"

# component-base/version is what /version reports and what kubectl compares.
minor="${kube_version#v1.}"
minor="${minor%%.*}"
version_pkg="k8s.io/component-base/version"
ldflags="-s -w"
ldflags+=" -X $version_pkg.gitVersion=$kube_version"
ldflags+=" -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$minor"
ldflags+=" -X $version_pkg.gitTreeState=clean"
ldflags+=" -X $version_pkg.buildDate=1970-01-01T00:00:00Z"

start_apiserver=$SECONDS
log "building kube-apiserver $kube_version (first run only; several minutes on 2 cores) ..."
(cd "$here/kube-apiserver" && go build -trimpath -ldflags "$ldflags" -o "$staging/kube-apiserver" .)
log "kube-apiserver built in $((SECONDS - start_apiserver))s (all: $((SECONDS - start))s)"

"$staging/etcd" --version >&2
"$staging/kube-apiserver" --version >&2

rm -rf "$out"
mv "$staging" "$out"
trap - EXIT
echo "$out"
