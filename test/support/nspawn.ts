// Compatibility re-export for tests written before lab/: the code lives in lab/nspawn.ts.
export * from '../../lab/nspawn.ts';
