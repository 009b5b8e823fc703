// Compatibility re-export for tests written before lab/: the code lives in lab/pgbouncer.ts.
export * from '../../lab/pgbouncer.ts';
