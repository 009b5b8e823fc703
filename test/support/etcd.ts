// Compatibility re-export: the etcd launcher lives in lab/etcd.ts.
export * from '../../lab/etcd.ts';
