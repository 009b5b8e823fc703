// The one writer of a lab node's pgha YAML. Every lab (loopback, network namespaces, nspawn)
// builds its nodes' configuration with nodeConfig(): the same roles and passwords (PASSWORDS), the
// same REST API credentials, the same small PostgreSQL; a lab passes what differs (addresses,
// directories, timing, pg_hba) and may still edit the object (a test's `configure` hook) before
// writeNodeConfig() writes it.
import { chownSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { PASSWORDS } from './util.ts';

/** The REST API's basic-auth credentials in every lab cluster. */
export const API_AUTH = { username: 'admin', password: 'admin-pw' };

export interface NodeConfigInput {
  scope: string;
  namespace: string;
  name: string;
  /** host:port of the REST API and of PostgreSQL. */
  apiListen: string;
  pgListen: string;
  dataDir: string;
  /** Unset: PostgreSQL's default socket directory. */
  socketDir?: string;
  etcdHosts: string[];
  /** bootstrap.dcs beyond `postgresql.parameters` (timing, synchronous mode ...); unset keys keep pgha's defaults. */
  dcs?: Record<string, unknown>;
  /** PostgreSQL parameters of bootstrap.dcs; default a small server (16 MB shared_buffers, 30 connections). */
  parameters?: Record<string, unknown>;
  /** bootstrap.pg_hba; unset: pgha's default (loopback). */
  pgHba?: string[];
  /** Unset: pgha's default pg_ctl_timeout. */
  pgCtlTimeout?: number;
  tags?: Record<string, unknown>;
}

/** A node's YAML as an object, to edit before writing. */
export function nodeConfig(o: NodeConfigInput): Record<string, any> {
  return {
    scope: o.scope, name: o.name, namespace: o.namespace,
    restapi: { listen: o.apiListen, authentication: { ...API_AUTH } },
    etcd: { hosts: o.etcdHosts },
    bootstrap: {
      dcs: { ...o.dcs, postgresql: { parameters: o.parameters ?? { shared_buffers: '16MB', max_connections: 30 } } },
      ...(o.pgHba === undefined ? {} : { pg_hba: o.pgHba }),
    },
    postgresql: {
      listen: o.pgListen, data_dir: o.dataDir, ...(o.socketDir === undefined ? {} : { socket_dir: o.socketDir }),
      authentication: {
        superuser: { username: 'postgres', password: PASSWORDS.superuser },
        replication: { username: 'replicator', password: PASSWORDS.replication },
        rewind: { username: 'rewinder', password: PASSWORDS.rewind },
      },
      ...(o.pgCtlTimeout === undefined ? {} : { pg_ctl_timeout: o.pgCtlTimeout }),
    },
    ...(o.tags === undefined ? {} : { tags: o.tags }),
  };
}

/** Write the YAML (or text) mode 0600, owned by `owner` when given (the agents' OS user). */
export function writeNodeConfig(path: string, cfg: Record<string, unknown> | string, owner?: { uid: number; gid: number }): void {
  writeFileSync(path, typeof cfg === 'string' ? cfg : stringify(cfg), { mode: 0o600 });
  if (owner !== undefined) chownSync(path, owner.uid, owner.gid);
}
