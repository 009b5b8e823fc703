// Compatibility re-export for tests written before lab/: the code lives in lab/pooler-load.ts.
export * from '../../lab/pooler-load.ts';
