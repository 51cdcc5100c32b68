#!/bin/sh
# The integration suites (skipped unless NKVM_RUN_KIND_INTEGRATION=1): all of them on the provider
# test/cluster/index.ts chooses, on one cluster started for them all (test/cluster/cli.ts run: the
# files run side by side on it, each test in namespaces of its own, and the cluster is disposed when
# they end, however they end; a file that needs a cluster to itself still starts its own). Where
# that provider is the local one (these machines), the seed's integration harness (backup smoke,
# auth, RBAC, copy stage, remote kubeconfig, in-cluster ServiceAccount) runs on a KinD cluster
# instead, at the same time as the rest: the clusters share nothing but the CPUs, and most of a
# suite's time is spent waiting for pods. The KinD run's output follows.
# The suites that always start a KinD cluster of their own shape (movers on several nodes) run only
# when named (ava.integration.config.mjs): in that KinD run after the smoke suite, or, on the kind
# provider, after the shared run (one process at a time starts and stops dockerd).
set -u
unset NKVM_SHARED_CLUSTER # set by test/cluster/cli.ts run for the suites it runs, never from outside
cd "$(dirname "$0")/.."
node=node_modules/.bin/node
ava="node_modules/.bin/ava --config ava.integration.config.mjs"
own_kind_suites="test/integration/movers-multinode.test.ts"
if [ "${NKVM_RUN_KIND_INTEGRATION:-}" != "1" ]; then
  exec $ava # every test skips: no cluster
fi
provider=${NKVM_CLUSTER_PROVIDER:-$($node test/cluster/cli.ts provider)}
shared="$node test/cluster/cli.ts run --"
if [ "$provider" = "kind" ]; then
  NKVM_CLUSTER_PROVIDER=kind $shared $ava
  main_status=$?
  NKVM_CLUSTER_PROVIDER=kind $ava $own_kind_suites
  kind_status=$?
  [ "$main_status" -eq 0 ] && [ "$kind_status" -eq 0 ]
  exit
fi
smoke=test/integration/kind-backup-smoke.test.ts
kind_suites="$smoke $own_kind_suites"
kind_log=$(mktemp)
started=$(date +%s)
(NKVM_CLUSTER_PROVIDER=kind $ava $kind_suites; status=$?; echo "[kind] ended (exit $status) after $(( $(date +%s) - started ))s"; exit $status) > "$kind_log" 2>&1 &
kind_pid=$!
NKVM_INTEGRATION_ELSEWHERE=$smoke NKVM_CLUSTER_PROVIDER=$provider $shared $ava
main_status=$?
wait "$kind_pid"
kind_status=$?
printf '\n--- %s on KinD ---\n' "$kind_suites"
cat "$kind_log"
rm -f "$kind_log"
[ "$main_status" -eq 0 ] && [ "$kind_status" -eq 0 ]
