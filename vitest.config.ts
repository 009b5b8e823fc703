import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    teardownTimeout: 60_000,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          pool: 'forks',
          // Integration tests share ports, the postgres OS user and CPU: one file at a time.
          fileParallelism: false,
          // A test starts etcd, three PostgreSQL servers and three agents: a minute is the honest upper bound.
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
