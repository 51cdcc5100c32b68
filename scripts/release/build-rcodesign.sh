#!/usr/bin/env bash
# Builds rcodesign (crates.io: apple-codesign), which ad-hoc signs the macOS executables after the
# SEA blob is injected (injection invalidates the signature Node.js shipped with) and verifies them.
# Idempotent and cached under $NKVM_CACHE (default ~/.cache/nkvm)/rcodesign-<version>; the first
# build compiles for several minutes. Prints the binary's path on stdout.
set -euo pipefail

RCODESIGN_VERSION="${NKVM_RCODESIGN_VERSION:-0.29.0}"
CACHE="${NKVM_CACHE:-$HOME/.cache/nkvm}"
out="$CACHE/rcodesign-$RCODESIGN_VERSION"

log() { printf '[build-rcodesign] %s\n' "$*" >&2; }

if [[ -f "$out/.complete" && -x "$out/bin/rcodesign" ]]; then echo "$out/bin/rcodesign"; exit 0; fi

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then PATH="$HOME/.cargo/bin:$PATH"; fi
command -v cargo >/dev/null || { log "cargo (Rust) is required to build rcodesign for the macOS executables"; exit 1; }

log "building rcodesign $RCODESIGN_VERSION from crates.io (first time: several minutes)"
# --locked: the crate's own Cargo.lock; no default features: notarization (AWS, App Store Connect)
# is not needed for ad-hoc signing.
cargo install apple-codesign --version "$RCODESIGN_VERSION" --locked --no-default-features \
  --root "$out" --target-dir "$out/target" >&2
rm -rf "$out/target"
touch "$out/.complete"
log "rcodesign $RCODESIGN_VERSION built in $out/bin"
echo "$out/bin/rcodesign"
