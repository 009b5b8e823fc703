// Compatibility re-export for tests written before lab/: the code lives in lab/backup.ts.
export * from '../../lab/backup.ts';
