#!/usr/bin/env bash
# Builds, from the Go module proxy, the programs the repository tests hold our output against: the
# real restic (reads and checks what we write, writes what we must read) and versitygw (a real S3
# server that checks signatures). Cached under $NKVM_CACHE by version, like the cluster binaries.
set -euo pipefail
log() { printf '[build-repository-tools] %s\n' "$*" >&2; }
. "$(dirname "$0")/go-build.sh"

RESTIC_VERSION="v0.19.1"
VERSITYGW_VERSION="v1.8.0"

build_main_package restic "$RESTIC_VERSION" github.com/restic/restic github.com/restic/restic/cmd/restic
build_main_package versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw github.com/versity/versitygw/cmd/versitygw
