#!/bin/sh
# Makes a fresh clone ready: npm dependencies (which bring Node 26 into node_modules/.bin), the
# plugin build, and, when asked, the local cluster's toolchain (Debian packages, and Kubernetes and
# etcd compiled from the Go module proxy, cached under ~/.cache/nkvm). Idempotent; a second run is fast.
#   sh scripts/bootstrap.sh                            dependencies and build
#   sh scripts/bootstrap.sh --cluster                  ... and the local cluster toolchain
#   sh scripts/bootstrap.sh --cluster-if-integration   with NKVM_RUN_KIND_INTEGRATION=1: the release archives
#                                                      (the Krew tests install them), and the toolchain when
#                                                      the local provider will be used
set -eu
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# Pinned to what Debian 12 ships; the local provider was checked against exactly these.
DEBIAN_PACKAGES="containerd=1.6.20~ds1-1+deb12u3 runc=1.1.5+ds1-1+deb12u1 containernetworking-plugins=1.1.1+ds1-3+b5 busybox-static=1:1.35.0-4+deb12u1+b1 zstd=1.5.4+dfsg2-5"
. scripts/go-env.sh

install_node_modules() {
  if [ -x node_modules/.bin/node ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then return; fi
  log "installing npm dependencies (with Node 26 from the npm registry)"
  npm ci --no-audit --no-fund --loglevel=error
}

wants_local_cluster() {
  case "${NKVM_CLUSTER_PROVIDER:-}" in
    local) return 0 ;;
    kind) return 1 ;;
  esac
  if command -v kind >/dev/null 2>&1 && docker info >/dev/null 2>&1; then return 1; fi
  return 0
}

install_debian_packages() {
  missing=""
  for pkg in $DEBIAN_PACKAGES; do
    name="${pkg%%=*}" version="${pkg#*=}"
    [ "$(dpkg-query -W -f '${Version}' "$name" 2>/dev/null || true)" = "$version" ] || missing="$missing $pkg"
  done
  [ -z "$missing" ] && return
  log "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  apt-get install -y --no-install-recommends $missing >/dev/null || { apt-get update >/dev/null && apt-get install -y --no-install-recommends $missing >/dev/null; }
}

# Go >= 1.24 builds Kubernetes 1.34; where the machine has none, take a toolchain from the Go module proxy.
ensure_go() {
  if command -v go >/dev/null 2>&1; then
    minor=$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
    [ "${minor:-0}" -ge 24 ] && return
  fi
  goroot="$CACHE/$GO_TOOLCHAIN"
  if [ ! -x "$goroot/bin/go" ]; then
    log "fetching $GO_TOOLCHAIN from the Go module proxy"
    mkdir -p "$CACHE" && tmp=$(mktemp -d)
    curl -fsSL -o "$tmp/go.zip" "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-$GO_TOOLCHAIN.linux-amd64.zip"
    (cd "$tmp" && python3 -m zipfile -e go.zip .)
    rm -rf "$goroot" && mv "$tmp/golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN.linux-amd64" "$goroot" && chmod +x "$goroot"/bin/* "$goroot"/pkg/tool/*/*
    rm -rf "$tmp"
  fi
  PATH="$goroot/bin:$PATH"
  export PATH
}

install_cluster_toolchain() {
  install_debian_packages
  ensure_go
  bash scripts/build-cluster-binaries.sh
}

install_node_modules
node_modules/.bin/node build.mjs
case "${1:-}" in
  --cluster) install_cluster_toolchain ;;
  --cluster-if-integration)
    if [ "${NKVM_RUN_KIND_INTEGRATION:-}" = "1" ]; then
      if wants_local_cluster; then install_cluster_toolchain; else ensure_go; fi
      node_modules/.bin/node scripts/release/release.ts
    fi ;;
  "") ;;
  *) log "unknown option $1"; exit 2 ;;
esac
