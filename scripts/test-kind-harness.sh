#!/bin/sh
# The seed's integration harness (backup smoke, auth, RBAC, copy stage, remote kubeconfig, in-cluster
# ServiceAccount) once more on a KinD cluster, after the whole suite ran on the local provider: Docker,
# kind and the node image come from the project's own toolchain (scripts/bootstrap.sh --cluster).
set -eu
cd "$(dirname "$0")/.."
[ "${NKVM_RUN_KIND_INTEGRATION:-}" = "1" ] || exit 0
[ "${NKVM_CLUSTER_PROVIDER:-}" = "kind" ] && exit 0 # the whole suite ran on kind already
NKVM_CLUSTER_PROVIDER=kind exec node_modules/.bin/ava --config ava.integration.config.mjs test/integration/kind-backup-smoke.test.ts
