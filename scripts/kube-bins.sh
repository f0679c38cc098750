#!/usr/bin/env bash
# Builds (once) the real kube-apiserver and kine (its etcd) that the aggregated e2e
# (tests/aggregated.rs) runs wardle behind, and caches them outside git.
#
# kube-apiserver comes from the k8s.io/kubernetes Go module through the module proxy. That
# module's own go.mod points its staging modules (k8s.io/api, k8s.io/apimachinery, ...) at
# ./staging/src paths and requires them as v0.0.0, which only works inside the kubernetes
# repository; so a throwaway module requires k8s.io/kubernetes and pins every staging module
# with a replace directive to the published v0.X.Y matching v1.X.Y.
#
# kube-controller-manager is built too: its namespace controller is what finishes a namespace
# deletion (it deletes the flunders in it through the aggregator).
#
# Output: ${WARDLE_CACHE_DIR:-$HOME/.cache/wardle}/kube-<version>/{kube-apiserver,kube-controller-manager,kine}
# The last line printed is that directory. If both binaries are there, nothing is built.
set -euo pipefail

KUBE_VERSION="${WARDLE_KUBE_VERSION:-1.35.4}"
KINE_VERSION="${WARDLE_KINE_VERSION:-v0.17.5}"
# go needs a home for its caches; CI environments may not set one.
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
CACHE="${WARDLE_CACHE_DIR:-$HOME/.cache/wardle}"
OUT="$CACHE/kube-$KUBE_VERSION"

if [[ -x "$OUT/kube-apiserver" && -x "$OUT/kube-controller-manager" && -x "$OUT/kine" ]]; then
    echo "$OUT"
    exit 0
fi
command -v go >/dev/null || { echo "kube-bins.sh: go is not installed" >&2; exit 1; }
mkdir -p "$OUT"
STAGING_VERSION="v0.${KUBE_VERSION#1.}"
WORK="$CACHE/build-$KUBE_VERSION"
mkdir -p "$WORK"
# A single package cache and build cache that survive between runs (and CI runs on the same
# machine); GOFLAGS from the environment (e.g. -mod=vendor) must not leak into this module.
export GOFLAGS=-buildvcs=false
export GOTOOLCHAIN=local

if [[ ! -x "$OUT/kube-apiserver" || ! -x "$OUT/kube-controller-manager" ]]; then
    echo "kube-bins.sh: preparing a module for k8s.io/kubernetes v$KUBE_VERSION (staging $STAGING_VERSION) in $WORK" >&2
    cd "$WORK"
    cat > go.mod <<MOD
module wardle.example.com/kubebins

go 1.25.0

require k8s.io/kubernetes v$KUBE_VERSION
MOD
    # The staging modules named in k8s.io/kubernetes' own replace block.
    gomod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$KUBE_VERSION.mod"
    [[ -f "$gomod" ]] || go mod download k8s.io/kubernetes@"v$KUBE_VERSION"
    {
        echo "replace ("
        sed -n '/^replace (/,/^)/p' "$gomod" | awk '$2 == "=>" && $3 ~ /^\.\/staging/ { printf "\t%s => %s %s\n", $1, $1, V }' V="$STAGING_VERSION"
        echo ")"
    } >> go.mod
    cat > tools.go <<'GO'
//go:build tools

// Package kubebins only exists to pin the modules kube-apiserver is built from.
package kubebins

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
    go mod tidy
fi

# What hack/lib/version.sh stamps into release builds; without it the binaries call themselves
# v0.0.0-master and clients warn about version skew.
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LDFLAGS+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=${KUBE_VERSION%%.*}"
    minor="${KUBE_VERSION#*.}"
    LDFLAGS+=" -X $pkg.gitMinor=${minor%%.*} -X $pkg.gitTreeState=clean"
done

if [[ ! -x "$OUT/kube-apiserver" ]]; then
    echo "kube-bins.sh: building kube-apiserver v$KUBE_VERSION" >&2
    cd "$WORK"
    CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
fi

if [[ ! -x "$OUT/kube-controller-manager" ]]; then
    echo "kube-bins.sh: building kube-controller-manager v$KUBE_VERSION" >&2
    cd "$WORK"
    CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o "$OUT/kube-controller-manager.tmp" k8s.io/kubernetes/cmd/kube-controller-manager
    mv "$OUT/kube-controller-manager.tmp" "$OUT/kube-controller-manager"
fi

if [[ ! -x "$OUT/kine" ]]; then
    echo "kube-bins.sh: building kine $KINE_VERSION" >&2
    # kine's SQLite driver needs cgo (a C compiler); kine's go.mod has no replace directives,
    # so go install works as is.
    CGO_ENABLED=1 GOBIN="$WORK/bin" go install -trimpath -ldflags "-s -w" "github.com/k3s-io/kine@$KINE_VERSION"
    mv "$WORK/bin/kine" "$OUT/kine"
fi

echo "$OUT"
