// Wiring of the v2 leader-key copy for vip-manager (src/dcs/v2-mirror.ts): a timer that tells the
// mirror how long this member's lease has left while it holds the key, and nothing otherwise.
import type { NodeConfig } from '../config/schema.ts';
import { clusterKeys } from '../dcs/keys.ts';
import { readEtcdCredentials } from '../dcs/etcd-tls.ts';
import { LeaderMirror } from '../dcs/v2-mirror.ts';
import type { Logger } from '../log/logger.ts';

// Half a second: vip-manager polls once a second by default, and the copy's TTL is the whole
// seconds left of the lease, so a refresh every half second keeps a one-second copy alive.
const TICK_MS = 500;

export interface LeaseSource {
  /** Time left to this member's fence deadline while it holds the key; null when it does not. */
  leaseLeftMs(): number | null;
}

export function startLeaderMirror(config: NodeConfig, source: string, logger: Logger, lease: LeaseSource): { stop(): Promise<void> } | null {
  const e = config.etcd;
  if (!e.v2_leader_mirror) return null;
  const creds = readEtcdCredentials(e, source);
  const tls = creds === undefined ? undefined : {
    ...(creds.rootCertificate ? { ca: creds.rootCertificate } : {}),
    ...(creds.certChain ? { cert: creds.certChain } : {}),
    ...(creds.privateKey ? { key: creds.privateKey } : {}),
  };
  const key = clusterKeys(config.namespace, config.scope).leader;
  const mirror = new LeaderMirror({
    hosts: e.hosts, protocol: e.protocol, key, name: config.name,
    ...(e.username !== undefined && e.password !== undefined ? { auth: { username: e.username, password: e.password } } : {}),
    ...(tls === undefined ? {} : { tls }),
    onChange: (ev) => {
      if (ev.kind === 'failed') logger.warn({ event: 'v2_mirror', err: { code: 'PGHA_LEADER_COPY_FAILED', message: ev.error } }, `cannot update the v2 copy of the leader key ${key}: ${ev.error}`);
      else logger.info({ event: 'v2_mirror', state: ev.kind }, `v2 copy of the leader key ${key}: ${ev.kind.replace(/_/g, ' ')}`);
    },
  });
  const timer = setInterval(() => void mirror.tick(lease.leaseLeftMs()), TICK_MS);
  void mirror.tick(lease.leaseLeftMs());
  return {
    async stop() {
      clearInterval(timer);
      await mirror.release();
    },
  };
}
