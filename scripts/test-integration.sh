#!/bin/sh
# The integration suites (skipped unless NKVM_RUN_KIND_INTEGRATION=1): all of them on the provider
# test/cluster/index.ts chooses, and where that is the local one (these machines), the seed's
# integration harness (backup smoke, auth, RBAC, copy stage, remote kubeconfig, in-cluster
# ServiceAccount) on a KinD cluster as well, at the same time: the two clusters share nothing but
# the CPUs, and most of a suite's time is spent waiting for pods. The KinD run's output follows.
set -u
cd "$(dirname "$0")/.."
ava="node_modules/.bin/ava --config ava.integration.config.mjs"
provider=${NKVM_CLUSTER_PROVIDER:-$(node_modules/.bin/node test/cluster/cli.ts provider)}
if [ "${NKVM_RUN_KIND_INTEGRATION:-}" != "1" ] || [ "$provider" = "kind" ]; then
  NKVM_CLUSTER_PROVIDER=$provider exec $ava
fi
kind_log=$(mktemp)
NKVM_CLUSTER_PROVIDER=kind $ava test/integration/kind-backup-smoke.test.ts > "$kind_log" 2>&1 &
kind_pid=$!
NKVM_CLUSTER_PROVIDER=$provider $ava
main_status=$?
wait "$kind_pid"
kind_status=$?
printf '\n--- test/integration/kind-backup-smoke.test.ts on KinD ---\n'
cat "$kind_log"
rm -f "$kind_log"
[ "$main_status" -eq 0 ] && [ "$kind_status" -eq 0 ]
