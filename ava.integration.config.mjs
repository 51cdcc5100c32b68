// Integration tests: the built plugin, run as `kubectl nkvm ...`, against real clusters. Each file
// starts its own cluster, so files run one at a time, in child processes (they spawn and mount).
export default {
  files: ['test/integration/**/*.test.ts'],
  extensions: ['ts'],
  workerThreads: false,
  concurrency: 1,
  timeout: '10m',
  verbose: true,
};
