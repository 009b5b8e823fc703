// A throw-away CA made by openssl at test time: the maker lives in lab/pki.ts, which the demo
// (`npm run demo -- --tls`) shares; tests keep importing it from here.
export { makePki, privateCopy, type Leaf, type Pki } from './pki.ts';

import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makePki, privateCopy, type Leaf } from './pki.ts';
import type { EtcdTlsFiles } from './etcd.ts';

/** What a TestCluster needs to run with TLS on every link, and what its clients present. */
export interface TlsEverywhere {
  caFile: string;
  /** etcd's member certificate (TestCluster `etcdTls`). */
  etcdTls: EtcdTlsFiles;
  /** The agents' etcd client certificate, also for pghactl. */
  etcdClient: Leaf;
  /** pghactl's and the test's client certificate for the agents' HTTPS API. */
  admin: Leaf;
  /** HAProxy's certificate and key in one PEM (its `crt`). */
  haproxyPem: string;
  /** Every private key written (to check that none leaks into a log). */
  keys: string[];
  /** TestCluster `configure`: etcd over TLS with auth, HTTPS API (verify_client required), PostgreSQL ssl and verify-full. */
  configure(i: number, cfg: Record<string, any>): void;
}

/**
 * The layout of docs/security.md with everything on, shared by tls-everywhere.test.ts and
 * `npm run bench -- --tls`: one CA in `dir`; etcd with client certificates and the etcd user
 * root/`etcdPassword`; each agent's API on HTTPS with `verify_client: required`; PostgreSQL with
 * ssl = on, hostssl lines for replication and rewind, and sslmode=verify-full with
 * channel_binding=require between members. Keys PostgreSQL reads are 0600, owned by `uid`/`gid`.
 */
export function tlsEverywhere(dir: string, etcdPassword: string, uid: number, gid: number): TlsEverywhere {
  chmodSync(dir, 0o755); // the agents (postgres) read the CA, certificates and keys
  const pki = makePki(join(dir, 'ca'));
  const etcdServer = pki.issue('etcd-server');
  const etcdClient = pki.issue('pgha-etcd-client');
  const admin = pki.issue('admin');
  const haproxy = pki.issue('haproxy');
  const haproxyPem = join(dir, 'haproxy.pem');
  writeFileSync(haproxyPem, readFileSync(haproxy.cert, 'utf8') + readFileSync(haproxy.key, 'utf8'));
  const nodes = [1, 2, 3].map((i) => pki.issue(`node${i}`, { sans: ['IP:127.0.0.1'] }));
  const peerTls = { sslmode: 'verify-full', sslrootcert: pki.caFile, channel_binding: 'require' };
  return {
    caFile: pki.caFile, etcdTls: { caFile: pki.caFile, ...etcdServer }, etcdClient, admin, haproxyPem,
    keys: [etcdServer.key, etcdClient.key, admin.key, haproxy.key, ...nodes.map((l) => l.key)],
    configure(i, cfg) {
      const leaf = nodes[i - 1]!;
      cfg.etcd = { ...cfg.etcd, protocol: 'https', cacert: pki.caFile, cert: etcdClient.cert, key: etcdClient.key, username: 'root', password: etcdPassword };
      Object.assign(cfg.restapi, { certfile: leaf.cert, keyfile: leaf.key, cafile: pki.caFile, verify_client: 'required', allowlist: ['127.0.0.1'] });
      cfg.ctl = { certfile: admin.cert, keyfile: admin.key, cacert: pki.caFile };
      cfg.postgresql.ssl = { cert_file: leaf.cert, ca_file: pki.caFile, key_file: privateCopy(leaf.key, join(dir, `node${i}.private.key`), uid, gid) };
      Object.assign(cfg.postgresql.authentication.replication, peerTls);
      Object.assign(cfg.postgresql.authentication.rewind, peerTls);
      cfg.bootstrap.pg_hba = [
        'local all postgres scram-sha-256',
        'host all postgres 127.0.0.1/32 scram-sha-256', // clients and HAProxy's routed connections
        'hostssl replication replicator 127.0.0.1/32 scram-sha-256',
        'hostssl all rewinder 127.0.0.1/32 scram-sha-256',
      ];
    },
  };
}
