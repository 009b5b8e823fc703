// Key layout of one cluster in etcd, under <namespace>/<scope>/ (Patroni's layout, so the
// shapes are familiar): leader, members/<name>, initialize, config, history, status, failover, sync, failsafe,
// and pgha's restart/<name> (scheduled restarts) and unsafe/<name> (set by pghactl verify).

export interface Keys {
  prefix: string;
  leader: string;
  membersPrefix: string;
  member(name: string): string;
  initialize: string;
  config: string;
  history: string;
  status: string;
  failover: string;
  sync: string;
  failsafe: string;
  restartPrefix: string;
  /** A member's scheduled restart (no lease: it survives an agent restart). */
  restart(name: string): string;
  unsafePrefix: string;
  /** A member pghactl verify found different from the leader: never promoted (no lease). */
  unsafe(name: string): string;
}

export function clusterKeys(namespace: string, scope: string): Keys {
  const ns = namespace.replace(/\/+$/, '');
  const prefix = `${ns.startsWith('/') ? ns : `/${ns}`}/${scope}/`;
  return {
    prefix,
    leader: `${prefix}leader`,
    membersPrefix: `${prefix}members/`,
    member: (name) => `${prefix}members/${name}`,
    initialize: `${prefix}initialize`,
    config: `${prefix}config`,
    history: `${prefix}history`,
    status: `${prefix}status`,
    failover: `${prefix}failover`,
    sync: `${prefix}sync`,
    failsafe: `${prefix}failsafe`,
    restartPrefix: `${prefix}restart/`,
    restart: (name) => `${prefix}restart/${name}`,
    unsafePrefix: `${prefix}unsafe/`,
    unsafe: (name) => `${prefix}unsafe/${name}`,
  };
}
