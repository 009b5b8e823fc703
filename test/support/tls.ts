// Compatibility re-export: the throw-away PKI lives in lab/tls.ts and lab/pki.ts.
export * from '../../lab/tls.ts';
