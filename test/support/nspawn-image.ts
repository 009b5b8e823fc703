// Compatibility re-export for tests written before lab/: the code lives in lab/nspawn-image.ts.
export * from '../../lab/nspawn-image.ts';
