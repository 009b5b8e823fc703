// The YAML of one Patroni 3.0.2 member on this machine (etcd3, PostgreSQL 15 from Debian), shared
// by the migration tests (test/support/patroni.ts) and the Patroni benchmark
// (scripts/bench-patroni.ts). pgha reads the same file through --patroni-config.
import { join } from 'node:path';
import { PASSWORDS } from './util.ts';

export interface PatroniMember {
  name: string;
  apiPort: number;
  pgPort: number;
  /** The member's directory: its pgpass file and PostgreSQL's socket live here. */
  dir: string;
  dataDir: string;
}

export interface PatroniConfigOptions {
  scope: string;
  namespace: string;
  etcdHosts: string[];
  /** bootstrap.dcs besides the PostgreSQL settings: Patroni's timing, synchronous_mode ... */
  dcs: Record<string, unknown>;
  /** restapi.authentication, if the REST API needs basic auth. */
  auth?: { username: string; password: string };
  tags?: Record<string, unknown>;
}

export function patroniConfig(n: PatroniMember, o: PatroniConfigOptions): Record<string, unknown> {
  return {
    scope: o.scope, name: n.name, namespace: o.namespace,
    restapi: { listen: `127.0.0.1:${n.apiPort}`, connect_address: `127.0.0.1:${n.apiPort}`, ...(o.auth === undefined ? {} : { authentication: o.auth }) },
    etcd3: { hosts: o.etcdHosts },
    bootstrap: {
      // pg_rewind on (pgha rewinds too), which needs wal_log_hints or data checksums: both are on.
      // Replication slots: Patroni's default (on).
      dcs: {
        ...o.dcs,
        postgresql: { use_pg_rewind: true, use_slots: true, parameters: { wal_log_hints: 'on', shared_buffers: '16MB', max_connections: 30 } },
      },
      initdb: [{ encoding: 'UTF8' }, 'data-checksums'],
    },
    postgresql: {
      listen: `127.0.0.1:${n.pgPort}`, connect_address: `127.0.0.1:${n.pgPort}`, data_dir: n.dataDir,
      bin_dir: '/usr/lib/postgresql/15/bin', pgpass: join(n.dir, 'pgpass'),
      authentication: {
        superuser: { username: 'postgres', password: PASSWORDS.superuser },
        replication: { username: 'replicator', password: PASSWORDS.replication },
        rewind: { username: 'rewinder', password: PASSWORDS.rewind },
      },
      pg_hba: ['local all all scram-sha-256', 'host all all 127.0.0.1/32 scram-sha-256', 'host replication replicator 127.0.0.1/32 scram-sha-256'],
      parameters: { unix_socket_directories: n.dir },
    },
    ...(o.tags === undefined ? {} : { tags: o.tags }),
  };
}
