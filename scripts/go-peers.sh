#!/usr/bin/env bash
# Builds (once) the Go peers the differential test (tests/differential.rs) compares wardle
# against: the real k8s.io/sample-apiserver and the etcd it stores in. Cached outside git, in
# the same cache (and Go module/build cache) as scripts/kube-bins.sh.
#
# sample-apiserver's module has real requires (no ./staging replaces), so `go install` of the
# module at its tag works as is. etcd's main package lives in the go.etcd.io/etcd/v3 root module,
# whose go.mod replaces its sibling modules with ../ paths; so a throwaway module requires
# go.etcd.io/etcd/server/v3 and a three-line main calls etcdmain.Main, which is all the root
# main package does.
#
# Output: ${WARDLE_CACHE_DIR:-$HOME/.cache/wardle}/go-peers-<sample>-<etcd>/{sample-apiserver,etcd}
# The last line printed is that directory. If both binaries are there, nothing is built.
set -euo pipefail

SAMPLE_VERSION="${WARDLE_SAMPLE_APISERVER_VERSION:-v0.35.4}"
ETCD_VERSION="${WARDLE_ETCD_VERSION:-v3.6.5}"
# go needs a home for its caches; CI environments may not set one.
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
CACHE="${WARDLE_CACHE_DIR:-$HOME/.cache/wardle}"
OUT="$CACHE/go-peers-$SAMPLE_VERSION-$ETCD_VERSION"

if [[ -x "$OUT/sample-apiserver" && -x "$OUT/etcd" ]]; then
    echo "$OUT"
    exit 0
fi
command -v go >/dev/null || { echo "go-peers.sh: go is not installed" >&2; exit 1; }
mkdir -p "$OUT"
WORK="$CACHE/build-go-peers-$ETCD_VERSION"
mkdir -p "$WORK"
# GOFLAGS from the environment (e.g. -mod=vendor) must not leak into these modules.
export GOFLAGS=-buildvcs=false
export GOTOOLCHAIN=local
export CGO_ENABLED=0

if [[ ! -x "$OUT/sample-apiserver" ]]; then
    echo "go-peers.sh: building k8s.io/sample-apiserver@$SAMPLE_VERSION" >&2
    minor="${SAMPLE_VERSION#v0.}"
    minor="${minor%%.*}"
    LDFLAGS="-s -w"
    # Stamp the matching Kubernetes version, as release builds do, so /version answers sensibly.
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        LDFLAGS+=" -X $pkg.gitVersion=v1.${SAMPLE_VERSION#v0.} -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    done
    GOBIN="$WORK/bin" go install -trimpath -ldflags "$LDFLAGS" "k8s.io/sample-apiserver@$SAMPLE_VERSION"
    mv "$WORK/bin/sample-apiserver" "$OUT/sample-apiserver"
fi

if [[ ! -x "$OUT/etcd" ]]; then
    echo "go-peers.sh: building etcd $ETCD_VERSION in $WORK" >&2
    cd "$WORK"
    cat > go.mod <<MOD
module wardle.example.com/etcdbin

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
    cat > main.go <<'GO'
// Command etcd is etcd's own main package (go.etcd.io/etcd/v3), built outside its repository.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    go mod tidy
    go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" .
    mv "$OUT/etcd.tmp" "$OUT/etcd"
fi

echo "$OUT"
