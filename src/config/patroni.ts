// A Patroni YAML (patroni.yml, Patroni 3.0.2's keys: patroni/config.py, validator.py, docs'
// yaml_configuration) as pgha's node configuration: each setting pgha has is carried over, and
// every setting it cannot carry is listed with the reason, never dropped silently. Used by
// `pghactl convert-config` and `pgha --patroni-config` (the same conversion).
import { fromPatroniConfig, PATRONI_ONLY_KEYS, PATRONI_ONLY_PG_KEYS } from '../dcs/patroni-config.ts';

export interface NotCarried {
  /** Dotted path in the Patroni file. */
  path: string;
  why: string;
}

export interface Conversion {
  /** pgha's node configuration (to be validated by nodeConfigSchema). */
  config: Record<string, unknown>;
  notCarried: NotCarried[];
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keys carried as they are, per section. */
const SAME: Record<string, readonly string[]> = {
  restapi: ['listen', 'connect_address', 'certfile', 'keyfile', 'cafile', 'verify_client', 'allowlist', 'allowlist_include_members'],
  ctl: ['certfile', 'keyfile', 'cacert', 'insecure'],
  watchdog: ['mode', 'device', 'safety_margin'],
  tags: ['nofailover', 'noloadbalance', 'clonefrom', 'nosync', 'failover_priority', 'replicatefrom', 'nostream'],
  etcd: ['protocol', 'username', 'password', 'cacert', 'cert', 'key'],
  postgresql: ['listen', 'connect_address', 'data_dir', 'bin_dir', 'pgpass', 'parameters', 'pg_ctl_timeout'],
};

/** Why a known Patroni key is not carried. */
const WHY: Record<string, string> = {
  'restapi.keyfile_password': 'pgha reads unencrypted keys only',
  'restapi.ciphers': 'pgha uses Node\'s default TLS ciphers',
  'restapi.http_extra_headers': 'pgha sends no extra headers',
  'restapi.https_extra_headers': 'pgha sends no extra headers',
  'restapi.request_queue_size': 'not configurable in pgha',
  'ctl.keyfile_password': 'pgha reads unencrypted keys only',
  'ctl.auth': 'pghactl uses restapi.authentication',
  'ctl.authentication': 'pghactl uses restapi.authentication',
  'postgresql.use_unix_socket': 'pgha always reaches its own server over the Unix socket (postgresql.socket_dir)',
  'postgresql.use_unix_socket_repl': 'pgha replicates over TCP',
  'postgresql.config_dir': 'pgha keeps postgresql.conf in the data directory',
  'postgresql.custom_conf': 'pgha writes its own postgresql.conf; put settings in parameters',
  'postgresql.pg_hba': 'pgha writes pg_hba.conf at bootstrap only: carried to bootstrap.pg_hba',
  'postgresql.pg_ident': 'pgha does not manage pg_ident.conf',
  'postgresql.recovery_conf': 'pgha manages the standby settings itself',
  'postgresql.create_replica_methods': 'pgha clones with pg_basebackup only',
  'postgresql.basebackup': 'pgha runs pg_basebackup with its own options',
  'postgresql.remove_data_directory_on_rewind_failure': 'pgha clones again when pg_rewind fails',
  'postgresql.remove_data_directory_on_diverged_timelines': 'pgha rewinds or clones a diverged member itself',
  'log.dir': 'pgha logs JSON lines to stdout (journald)',
  'log.file_num': 'pgha logs to stdout', 'log.file_size': 'pgha logs to stdout', 'log.format': 'pgha logs JSON lines',
  'log.dateformat': 'pgha logs JSON lines', 'log.traceback_level': 'not configurable in pgha', 'log.loggers': 'not configurable in pgha',
  'log.max_queue_size': 'not configurable in pgha',
  'bootstrap.method': 'Patroni runs a custom command; pgha bootstraps with initdb, or restores a stanza with bootstrap.method: pgbackrest (set it by hand: docs/backup.md)',
  'bootstrap.post_bootstrap': 'pgha has no post-bootstrap script; create users with bootstrap.users',
  'bootstrap.post_init': 'pgha has no post-bootstrap script; create users with bootstrap.users',
};

const LOG_LEVELS: Record<string, string> = { DEBUG: 'debug', INFO: 'info', WARNING: 'warn', WARN: 'warn', ERROR: 'error', CRITICAL: 'error', FATAL: 'error' };
const OTHER_DCS = ['consul', 'zookeeper', 'exhibitor', 'kubernetes', 'raft'];

/** A Patroni callback (one command line, run through no shell by Patroni either) as pgha's list. */
function command(v: unknown): string[] | null {
  if (typeof v !== 'string') return null;
  const words = v.trim().split(/\s+/).filter(Boolean);
  // Quotes or shell syntax cannot be split faithfully without a shell: leave those to the operator.
  if (words.length === 0 || !words[0]!.startsWith('/') || /["'`$\\|;&<>]/.test(v)) return null;
  return words;
}

export function convertPatroniConfig(doc: unknown): Conversion {
  const notCarried: NotCarried[] = [];
  const drop = (path: string, why: string) => notCarried.push({ path, why });
  const out: Obj = {};
  let pgHba: unknown[] | null = null;
  if (!isObject(doc)) return { config: out, notCarried: [{ path: '(top level)', why: 'not a YAML mapping' }] };

  const section = (name: string, target: string, src: unknown, handled: readonly string[] = []): Obj => {
    const dst: Obj = {};
    if (!isObject(src)) return dst;
    for (const [k, v] of Object.entries(src)) {
      const path = `${name}.${k}`;
      if (SAME[target]?.includes(k)) dst[k] = v;
      else if (handled.includes(k)) continue;
      else drop(path, WHY[path] || 'pgha has no such setting');
    }
    return dst;
  };

  for (const [k, v] of Object.entries(doc)) {
    switch (k) {
      case 'scope': case 'name': case 'namespace': out[k] = v; break;
      case 'log': {
        const l = isObject(v) ? v : {};
        const log: Obj = {};
        for (const [lk, lv] of Object.entries(l)) {
          if (lk === 'level' && typeof lv === 'string' && LOG_LEVELS[lv.toUpperCase()] !== undefined) log['level'] = LOG_LEVELS[lv.toUpperCase()];
          else drop(`log.${lk}`, WHY[`log.${lk}`] ?? 'pgha has no such setting');
        }
        out['log'] = log;
        break;
      }
      case 'restapi': {
        const r = section('restapi', 'restapi', v, ['authentication']);
        if (isObject(v) && isObject(v['authentication'])) r['authentication'] = { username: v['authentication']['username'], password: v['authentication']['password'] };
        out['restapi'] = r;
        break;
      }
      case 'ctl': out['ctl'] = section('ctl', 'ctl', v); break;
      case 'watchdog': out['watchdog'] = section('watchdog', 'watchdog', v); break;
      case 'tags': out['tags'] = section('tags', 'tags', v); break;
      case 'etcd3': case 'etcd': {
        const e = section(k, 'etcd', v, ['hosts', 'host', 'url', 'proxy', 'srv', 'srv_suffix']);
        if (isObject(v)) {
          const hosts = v['hosts'] ?? v['host'] ?? v['url'];
          if (hosts !== undefined) e['hosts'] = hosts;
          for (const x of ['proxy', 'srv', 'srv_suffix']) if (x in v) drop(`${k}.${x}`, 'pgha takes etcd.hosts only (no DNS SRV discovery, no proxy)');
        }
        if (k === 'etcd') drop('etcd', 'Patroni\'s etcd: section uses etcd\'s v2 API, whose keys etcd v3 clients (pgha) do not see: its hosts are carried to pgha\'s etcd (v3), the cluster state Patroni wrote there is not. Move Patroni to etcd3: before migrating');
        out['etcd'] = e;
        break;
      }
      case 'bootstrap': out['bootstrap'] = convertBootstrap(v, drop); break;
      case 'postgresql': {
        const { pg, hba } = convertPostgresql(v, drop);
        out['postgresql'] = pg;
        pgHba = hba;
        break;
      }
      default:
        drop(k, OTHER_DCS.includes(k) ? 'pgha uses etcd v3 only' : k === 'citus' ? 'pgha has no Citus support' : 'pgha has no such setting');
    }
  }
  // Patroni rewrites pg_hba.conf from postgresql.pg_hba at every start; pgha writes it at bootstrap.
  if (pgHba !== null) {
    const b = (out['bootstrap'] ??= {}) as Obj;
    b['pg_hba'] ??= pgHba;
  }
  return { config: out, notCarried };
}

function convertBootstrap(v: unknown, drop: (path: string, why: string) => void): Obj {
  const b: Obj = {};
  if (!isObject(v)) return b;
  for (const [k, x] of Object.entries(v)) {
    if (k === 'dcs') b['dcs'] = convertDcs(x, drop);
    else if (k === 'initdb' || k === 'pg_hba') b[k] = x;
    else if (k === 'users' && isObject(x)) {
      b['users'] = Object.fromEntries(Object.entries(x).map(([u, d]) => [u, isObject(d) ? { password: d['password'], ...(Array.isArray(d['options']) ? { options: d['options'] } : {}) } : d]));
    } else drop(`bootstrap.${k}`, WHY[`bootstrap.${k}`] ?? (isObject(x) ? 'a custom bootstrap method: pgha bootstraps with initdb or bootstrap.method: pgbackrest (set it by hand)' : 'pgha has no such setting'));
  }
  return b;
}

/** bootstrap.dcs: as pgha reads a Patroni /config, listing what it leaves out. */
function convertDcs(v: unknown, drop: (path: string, why: string) => void): unknown {
  if (!isObject(v)) return v;
  for (const k of PATRONI_ONLY_KEYS) if (k in v) drop(`bootstrap.dcs.${k}`, 'a Patroni-only /config setting: pgha does not act on it and does not write it at bootstrap (an existing /config keeps it)');
  const pg = v['postgresql'];
  if (isObject(pg)) for (const k of PATRONI_ONLY_PG_KEYS) if (k in pg) drop(`bootstrap.dcs.postgresql.${k}`, 'a Patroni-only /config setting: pgha does not act on it and does not write it at bootstrap (an existing /config keeps it)');
  const out = fromPatroniConfig(v) as Obj;
  const pause = out['pause'];
  if (pause === false) delete out['pause'];
  return out;
}

function convertPostgresql(v: unknown, drop: (path: string, why: string) => void): { pg: Obj; hba: unknown[] | null } {
  const p: Obj = {};
  let hba: unknown[] | null = null;
  if (!isObject(v)) return { pg: p, hba };
  for (const [k, x] of Object.entries(v)) {
    const path = `postgresql.${k}`;
    if (k === 'listen' && typeof x === 'string' && x.startsWith('*:')) p[k] = `0.0.0.0${x.slice(1)}`;
    else if (SAME['postgresql']!.includes(k)) p[k] = x;
    else if (k === 'authentication' && isObject(x)) {
      const auth: Obj = {};
      for (const [role, c] of Object.entries(x)) {
        if (!['superuser', 'replication', 'rewind'].includes(role) || !isObject(c)) { drop(`${path}.${role}`, 'pgha connects as superuser, replication and rewind only'); continue; }
        const cred: Obj = {};
        for (const [ck, cv] of Object.entries(c)) {
          if (['username', 'password', 'sslmode', 'sslcert', 'sslkey', 'sslrootcert', 'sslcrl', 'channel_binding'].includes(ck)) cred[ck] = cv;
          else drop(`${path}.${role}.${ck}`, 'pgha has no such connection setting');
        }
        auth[role] = cred;
      }
      p['authentication'] = auth;
    } else if (k === 'callbacks' && isObject(x)) {
      const cbs: Obj = {};
      for (const [a, c] of Object.entries(x)) {
        const cmd = command(c);
        if (cmd !== null && ['on_start', 'on_stop', 'on_restart', 'on_reload', 'on_role_change'].includes(a)) cbs[a] = cmd;
        else drop(`${path}.${a}`, cmd === null ? 'not a plain command line starting with an absolute path: give pgha its argument list' : 'pgha has no such callback');
      }
      p['callbacks'] = cbs;
    } else if (k === 'pre_promote' || k === 'before_stop') {
      const cmd = command(x);
      if (cmd !== null) p[k] = cmd;
      else drop(path, 'not a plain command line starting with an absolute path: give pgha its argument list');
    } else if (k === 'pg_hba' && Array.isArray(x)) {
      hba = x;
      drop(path, WHY[path]!);
    } else drop(path, WHY[path] ?? 'pgha has no such setting');
  }
  // Patroni's socket directory is a parameter; pgha's agent needs it as postgresql.socket_dir.
  const params = p['parameters'];
  if (isObject(params) && typeof params['unix_socket_directories'] === 'string') {
    const first = params['unix_socket_directories'].split(',')[0]!.trim();
    if (first.startsWith('/')) p['socket_dir'] = first;
  }
  return { pg: p, hba };
}
