#!/usr/bin/env node
// Shim for `pghactl`: needs Node 24, which runs the TypeScript sources directly (type stripping).
// Inside npm scripts and `npx`, node_modules/.bin (with the pinned Node 24) comes first on PATH.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write('pghactl needs Node 24: run it as `npx pghactl` from the pgha checkout, or with node_modules/.bin/node\n');
  process.exit(2);
}
await import('../src/cli/main.ts');
