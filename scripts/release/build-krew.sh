#!/usr/bin/env bash
# Builds krew's own binaries from the Go module proxy, to check the release's Krew manifest and to try
# an install from the built archives:
#   kubectl-krew             the krew plugin itself (kubectl krew install --manifest=... --archive=...)
#   validate-krew-manifest   the manifest checker krew-index runs on every submission
# Idempotent and cached under $NKVM_CACHE (default ~/.cache/nkvm)/krew-<version>/bin, keyed by version.
# Prints the bin directory on stdout.
set -euo pipefail

KREW_VERSION="${NKVM_KREW_VERSION:-v0.4.3}"
. "$(dirname "$0")/../go-env.sh"

log() { printf '[build-krew] %s\n' "$*" >&2; }

out="$CACHE/krew-$KREW_VERSION"
if [[ -f "$out/.complete" ]]; then
  log "krew $KREW_VERSION cached in $out/bin"
  echo "$out/bin"
  exit 0
fi

command -v go >/dev/null || { log "Go is required (go1.22 or newer): run 'sh scripts/bootstrap.sh --cluster' or install it"; exit 1; }

rm -rf "$out" && mkdir -p "$out/bin"
log "building krew $KREW_VERSION from the Go module proxy"
# sigs.k8s.io/krew's go.mod has no replace directives, so 'go install pkg@version' builds it with
# exactly the dependency versions krew pinned.
GOBIN="$out/bin" go install \
  -ldflags "-s -w -X sigs.k8s.io/krew/internal/version.gitTag=$KREW_VERSION" \
  "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION" \
  "sigs.k8s.io/krew/cmd/validate-krew-manifest@$KREW_VERSION"
mv "$out/bin/krew" "$out/bin/kubectl-krew"
touch "$out/.complete"
log "krew $KREW_VERSION built in $out/bin"
echo "$out/bin"
