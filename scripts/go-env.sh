# Sourced by the scripts that build Go programs from the module proxy (POSIX sh): the cache they
# share under $NKVM_CACHE, static reproducible builds with the local toolchain only, and the Go
# toolchain scripts/bootstrap.sh fetches into the cache when the machine has none.
CACHE="${NKVM_CACHE:-$HOME/.cache/nkvm}"
GO_TOOLCHAIN="go1.26.8"
export GOMODCACHE="$CACHE/go/mod"
export GOCACHE="$CACHE/go/build"
export GOTOOLCHAIN=local
export GOFLAGS="-buildvcs=false -trimpath"
export CGO_ENABLED=0
if ! command -v go >/dev/null 2>&1 && [ -x "$CACHE/$GO_TOOLCHAIN/bin/go" ]; then
  PATH="$CACHE/$GO_TOOLCHAIN/bin:$PATH"
  export PATH
fi
