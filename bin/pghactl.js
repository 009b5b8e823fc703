#!/usr/bin/env node
// Shim for `pghactl`: needs Node 24. Runs dist/ (compiled by `npm run build`, what the Debian
// package ships) when it is current, else the TypeScript sources in src/ (type stripping): see
// bin/entry.js. Inside npm scripts and `npx`, node_modules/.bin (with the pinned Node 24) comes
// first on PATH; the package's /usr/bin/pghactl runs /opt/pgha's own Node 24.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write('pghactl needs Node 24: run it as `npx pghactl` from the pgha checkout, or with node_modules/.bin/node\n');
  process.exit(2);
}
const { entry } = await import('./entry.js');
await import(entry('cli/main'));
