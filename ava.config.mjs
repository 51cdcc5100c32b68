// Unit tests: pure logic, fast, never a cluster. Node 26 runs the TypeScript directly (type stripping).
export default {
  files: ['test/unit/**/*.test.ts'],
  extensions: ['ts'],
  timeout: '60s',
};
