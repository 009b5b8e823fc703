// Compatibility re-export for tests written before lab/: the code lives in lab/nspawn-events.ts.
export * from '../../lab/nspawn-events.ts';
