// Compatibility re-export for tests written before lab/: the code lives in lab/netlab.ts.
export * from '../../lab/netlab.ts';
