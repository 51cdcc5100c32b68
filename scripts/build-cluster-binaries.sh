#!/usr/bin/env bash
# Builds, from the Go module proxy, the binaries the local cluster provider runs (Kubernetes, etcd,
# local-path-provisioner) and what the kind provider's setup and node image add.
# Idempotent and cached: everything lands under $NKVM_CACHE (default ~/.cache/nkvm), keyed by version,
# so only the first run on a machine pays the 15-35 minute compile.
set -euo pipefail

KUBERNETES_VERSION="${NKVM_KUBERNETES_VERSION:-v1.34.4}"
ETCD_VERSION="${NKVM_ETCD_VERSION:-v3.6.16}"
# The dynamic provisioner behind the default StorageClass, as KinD ships it.
LOCAL_PATH_PROVISIONER_VERSION="v0.0.30"
KIND_VERSION="v0.33.0"
KUBEADM_ETCD_VERSION="v3.6.5"
KUBEADM_COREDNS_VERSION="v1.12.1"
# The snapshot machinery the test clusters run beside their CSI driver (test/cluster/csi-driver).
EXTERNAL_SNAPSHOTTER_VERSION="v8.7.0"
EXTERNAL_PROVISIONER_VERSION="v6.4.0"

# kube-proxy gives pods the `kubernetes` Service; kubeadm is what a KinD node image carries.
KUBERNETES_COMMANDS="kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy kubeadm"

log() { printf '[build-cluster-binaries] %s\n' "$*" >&2; }
. "$(dirname "$0")/go-build.sh"

build_kubernetes() {
  local out="$CACHE/kubernetes-$KUBERNETES_VERSION" missing="" cmd
  for cmd in $KUBERNETES_COMMANDS; do [[ -x "$out/bin/$cmd" ]] || missing+=" $cmd"; done
  if [[ -z "$missing" ]]; then log "kubernetes $KUBERNETES_VERSION cached in $out"; return; fi
  local src="$out/src"
  # Binaries already built stay; Go's build cache makes rebuilding the set cheap when one is added.
  rm -rf "$src" && mkdir -p "$src"
  log "building kubernetes $KUBERNETES_VERSION:$missing (cold build: tens of minutes)"
  local staging_version="v0.${KUBERNETES_VERSION#v1.}"
  local upstream_mod
  upstream_mod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  # k8s.io/kubernetes pins its staging modules at v0.0.0 with local replaces; point them at the
  # published tags of the same release instead.
  {
    echo "module nkvm.local/kubernetes-binaries"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    grep -oE '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$upstream_mod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } > "$src/go.mod"
  cat > "$src/tools.go" <<GO
//go:build tools

package tools

import (
$(for cmd in $KUBERNETES_COMMANDS; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done)
)
GO
  (cd "$src" && go mod tidy)
  local minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  # shellcheck disable=SC2086 # one package path per command
  (cd "$src" && go build -tags tools -ldflags "$ldflags" -o "$out/bin/" $(printf 'k8s.io/kubernetes/cmd/%s ' $KUBERNETES_COMMANDS))
  log "kubernetes $KUBERNETES_VERSION built in $out/bin"
}

# The kubernetes-csi sidecars replace their own client module with ./client, so `go install` refuses
# them: build inside a copy of the module, with the client module copied where the replace points.
#   build_csi_module NAME VERSION MODULE COMMAND... -> $CACHE/NAME-VERSION/bin/COMMAND
build_csi_module() {
  local name="$1" version="$2" module="$3"; shift 3
  local out="$CACHE/$name-$version"
  if [[ -f "$out/.complete" ]]; then log "$name $version cached in $out"; return; fi
  rm -rf "$out" && mkdir -p "$out/bin"
  log "building $name $version: $*"
  local dir src="$out/src"
  # -json reports a failed download on stdout, not stderr: say which one failed.
  dir=$(go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p') || true
  [[ -n "$dir" ]] || { log "cannot download $module@$version"; exit 1; }
  cp -r "$dir" "$src" && chmod -R u+w "$src"
  if grep -q '=> ./client' "$src/go.mod"; then
    # github.com/kubernetes-csi/external-snapshotter/v8 -> github.com/kubernetes-csi/external-snapshotter/client/v8
    local client client_module="${module%/*}/client/${module##*/}"
    client=$(go mod download -json "$client_module@$version" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p') || true
    [[ -n "$client" ]] || { log "cannot download $client_module@$version"; exit 1; }
    rm -rf "$src/client" && cp -r "$client" "$src/client" && chmod -R u+w "$src/client"
  fi
  local cmd
  for cmd in "$@"; do (cd "$src" && go build -mod=mod -ldflags "-s -w -X main.version=$version" -o "$out/bin/$cmd" "./cmd/$cmd"); done
  # The VolumeSnapshot CRDs ship with the client module.
  [[ -d "$src/client/config/crd" ]] && cp -r "$src/client/config/crd" "$out/crd"
  rm -rf "$src"
  touch "$out/.complete"
  log "$name $version built in $out/bin"
}

# etcd's main lives in an internal package: a wrapper module calls it.
build_etcd() {
  local version="$1" out="$CACHE/etcd-$1"
  if [[ -f "$out/.complete" ]]; then log "etcd $version cached in $out"; return; fi
  local src="$out/src"
  rm -rf "$out" && mkdir -p "$src"
  log "building etcd $version"
  cat > "$src/go.mod" <<MOD
module nkvm.local/etcd-binary

go 1.24.0

require go.etcd.io/etcd/server/v3 $version
MOD
  cat > "$src/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$src" && go mod tidy && go build -ldflags "-s -w" -o "$out/bin/etcd" .)
  touch "$out/.complete"
  log "etcd $version built in $out/bin"
}

build_etcd "$ETCD_VERSION"
build_main_package local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" github.com/rancher/local-path-provisioner
build_kubernetes
# What a KinD node image holds beyond the binaries above: the etcd and CoreDNS versions kubeadm
# v1.34 deploys (it looks their images up by these tags); and kind itself.
build_etcd "$KUBEADM_ETCD_VERSION"
build_main_package coredns "$KUBEADM_COREDNS_VERSION" github.com/coredns/coredns
build_main_package kind "$KIND_VERSION" sigs.k8s.io/kind
build_csi_module external-snapshotter "$EXTERNAL_SNAPSHOTTER_VERSION" github.com/kubernetes-csi/external-snapshotter/v8 snapshot-controller csi-snapshotter
build_csi_module external-provisioner "$EXTERNAL_PROVISIONER_VERSION" github.com/kubernetes-csi/external-provisioner/v6 csi-provisioner
# Our CSI driver's modules, so that its image (built by test/cluster/images/build.ts) needs no network.
(cd "$(dirname "$0")/../test/cluster/csi-driver" && go mod download)
# dockerd's runtime where the capability bounding set lacks some capability (scripts/kind/nkvm-runc).
(cd "$(dirname "$0")/kind/nkvm-runc" && go build -ldflags "-s -w" -o "$CACHE/nkvm-runc/nkvm-runc" .)
