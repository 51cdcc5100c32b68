#!/bin/sh
# Makes a fresh clone ready: npm dependencies (which bring Node 26 into node_modules/.bin), the
# plugin build, and, when asked, the test clusters' toolchain (Debian packages, and Kubernetes, etcd,
# local-path-provisioner, CoreDNS and kind compiled from the Go module proxy, cached under
# ~/.cache/nkvm), and restic and versitygw, the repository tests' judges. Idempotent; a second run is fast.
#   sh scripts/bootstrap.sh                            dependencies and build
#   sh scripts/bootstrap.sh --cluster                  ... and the toolchain of both cluster providers
#   sh scripts/bootstrap.sh --cluster-if-integration   with NKVM_RUN_KIND_INTEGRATION=1: the toolchain and the
#                                                      release archives (the Krew tests install them)
set -eu
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# Pinned to what Debian 12 ships; the local provider was checked against exactly these. The kind
# provider adds Docker (started by hand where there is no engine) and debootstrap (its node image).
# restic 0.14 is the repository tests' second restic (the first repository format 2 release), beside
# the v0.19.1 that scripts/build-repository-tools.sh builds.
DEBIAN_PACKAGES="containerd=1.6.20~ds1-1+deb12u3 runc=1.1.5+ds1-1+deb12u1 containernetworking-plugins=1.1.1+ds1-3+b5 busybox-static=1:1.35.0-4+deb12u1+b1 zstd=1.5.4+dfsg2-5 restic=0.14.0-1+b5"
KIND_DEBIAN_PACKAGES="docker.io=20.10.24+dfsg1-1+deb12u1+b6 debootstrap=1.0.128+nmu2+deb12u2"
. scripts/go-env.sh

install_node_modules() {
  if [ -x node_modules/.bin/node ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then return; fi
  log "installing npm dependencies (with Node 26 from the npm registry)"
  npm ci --no-audit --no-fund --loglevel=error
}

install_debian_packages() {
  missing=""
  for pkg in "$@"; do
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

# Both providers': the local one runs these binaries, the kind one builds its node image from them.
install_cluster_toolchain() {
  if [ "$(cut -d. -f1 /etc/debian_version 2>/dev/null)" = "12" ]; then
    # shellcheck disable=SC2086
    install_debian_packages $DEBIAN_PACKAGES $KIND_DEBIAN_PACKAGES
  else
    for tool in containerd ctr runc busybox docker debootstrap restic; do
      command -v "$tool" >/dev/null 2>&1 || log "warning: $tool is missing (on Debian 12 these are installed, pinned: $DEBIAN_PACKAGES $KIND_DEBIAN_PACKAGES)"
    done
  fi
  ensure_go
  bash scripts/build-cluster-binaries.sh
  bash scripts/build-repository-tools.sh
}

install_node_modules
node_modules/.bin/node build.mjs
case "${1:-}" in
  --cluster) install_cluster_toolchain ;;
  --cluster-if-integration)
    if [ "${NKVM_RUN_KIND_INTEGRATION:-}" = "1" ]; then
      install_cluster_toolchain
      node_modules/.bin/node scripts/release/release.ts
    fi ;;
  "") ;;
  *) log "unknown option $1"; exit 2 ;;
esac
