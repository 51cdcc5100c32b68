// Integration tests: the built plugin, run as `kubectl nkvm ...`, against real clusters, in child
// processes (they spawn and mount). scripts/test-integration.sh starts one cluster for the run and
// names it in NKVM_SHARED_CLUSTER (test/cluster/shared.ts): the files then run side by side on it,
// each test in namespaces of its own, the longest first. Without it each file starts a cluster of
// its own, so the files run one at a time.
const shared = Boolean(process.env.NKVM_SHARED_CLUSTER);

/** Longest first, so that the last file to start is a short one; any file not named goes last. */
const LONGEST_FIRST = [
  'kind-backup-smoke',
  'restore',
  'cluster',
  'movers',
  'cluster-shapes',
  'repository-backup',
  'copy-protocol',
  'live-claims',
  'krew',
  'completion',
].map((name) => `/test/integration/${name}.test.ts`);
/**
 * Suites that start a cluster of their own shape whatever the provider, left out of the run of every
 * suite: they run only when named, as scripts/test-integration.sh names them beside the KinD smoke.
 */
const ONLY_WHEN_NAMED = ['test/integration/movers-multinode.test.ts'];
/**
 * Suites another cluster runs in this same run (NKVM_INTEGRATION_ELSEWHERE, comma-separated paths):
 * scripts/test-integration.sh runs the seed's harness on KinD beside the local provider's run, so the
 * local run leaves it out rather than run it twice.
 */
const ELSEWHERE = (process.env.NKVM_INTEGRATION_ELSEWHERE ?? '').split(',').filter(Boolean);
const rank = (file) => {
  const index = LONGEST_FIRST.findIndex((suffix) => file.endsWith(suffix));
  return index === -1 ? LONGEST_FIRST.length : index;
};

export default {
  files: ['test/integration/**/*.test.ts', ...[...ONLY_WHEN_NAMED, ...ELSEWHERE].map((file) => `!${file}`)],
  extensions: ['ts'],
  workerThreads: false,
  concurrency: shared ? 4 : 1,
  ...(shared ? { sortTestFiles: (a, b) => rank(a) - rank(b) || a.localeCompare(b) } : {}),
  timeout: '10m',
  verbose: true,
};
