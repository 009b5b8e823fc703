// `npm run demo`: a working three-node pgha cluster on this machine. Starts one etcd, three agents
// (configs from config/node1..3.yml), HAProxy, and PgBouncer on port 6432 in front of HAProxy's
// read-write port (the agents PAUSE and RESUME it around a switchover: docs/pgbouncer.md), waits
// until the cluster is healthy, prints how to connect and `pghactl list`, and stops everything
// cleanly on Ctrl-C.
//   --smoke   exit after the cluster is healthy (used by the test suite)
//   --tls     the agents' REST API over HTTPS with client certificates (verify_client: required),
//             a throw-away CA made with openssl in the demo's directory, HAProxy checking with
//             check-ssl and its own certificate
import { execFile, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { apiRequest } from '../src/api/client.ts';
import type { ClientTls } from '../src/api/tls.ts';
import { spawnAgent } from '../lab/agent.ts';
import { waitHealthy, type Cluster } from '../lab/cluster.ts';
import { startEtcd } from '../lab/etcd.ts';
import { startHaproxy } from '../lab/haproxy.ts';
import { lookupOsUser } from '../src/postgres/instance.ts';
import { makePki } from '../lab/pki.ts';
import { startPgbouncer } from '../lab/pgbouncer.ts';

const REPO = new URL('..', import.meta.url).pathname;
const ETCD_CLIENT = 2479; // not 2379, so a system etcd (Debian's etcd-server service) is left alone
const ETCD_PEER = 2480;
const RW_PORT = 5000;
const RO_PORT = 5001;
const PGBOUNCER_PORT = 6432;
// PgBouncer's admin user, which the agents use for PAUSE/RESUME/RECONNECT (demo only).
const POOLER_ADMIN = { user: 'pgha_admin', password: 'pooler-admin-password' };
const smoke = process.argv.includes('--smoke');
const tls = process.argv.includes('--tls');
const isRoot = process.getuid?.() === 0;
const owner = isRoot ? lookupOsUser('postgres') : null;
const base = process.env.PGHA_DEMO_DIR ?? (isRoot ? '/var/lib/pgha/demo' : join(homedir(), '.local/share/pgha-demo'));
const children: ChildProcess[] = [];
/** Stops of what the demo started through a lab launcher with a stop of its own (etcd). */
const stops: Array<() => Promise<void>> = [];

function own(path: string): void {
  if (owner !== null) chownSync(path, owner.uid, owner.gid);
}

interface DemoNode { name: string; config: string; pgPort: number; apiPort: number }

/** The pooler admin password, in a file of its own the agents read (never in their YAML). */
function poolerPassFile(): string {
  const path = join(base, 'pgbouncer-admin.pass');
  writeFileSync(path, `${POOLER_ADMIN.password}\n`, { mode: 0o600 });
  own(path);
  return path;
}

/** --tls: the CA, one certificate per agent, one for you (curl, pghactl) and one for HAProxy. */
interface DemoPki { dir: string; caFile: string; node: (i: number) => { cert: string; key: string }; admin: { cert: string; key: string }; haproxyPem: string }

function preparePki(): DemoPki {
  const dir = join(base, 'pki');
  const pki = makePki(dir, 'pgha-demo-ca');
  const nodes = [1, 2, 3].map((i) => pki.issue(`node${i}`));
  const admin = pki.issue('admin');
  const haproxy = pki.issue('haproxy');
  const haproxyPem = join(dir, 'haproxy.pem');
  writeFileSync(haproxyPem, readFileSync(haproxy.cert, 'utf8') + readFileSync(haproxy.key, 'utf8'), { mode: 0o600 });
  own(dir);
  return { dir, caFile: pki.caFile, node: (i) => nodes[i - 1]!, admin, haproxyPem };
}

function prepareNode(i: number, pki: DemoPki | null): DemoNode {
  const cfg = parse(readFileSync(join(REPO, `config/node${i}.yml`), 'utf8')) as Record<string, any>;
  const dir = join(base, `node${i}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  own(dir);
  cfg.etcd = { ...cfg.etcd, hosts: [`127.0.0.1:${ETCD_CLIENT}`] };
  cfg.postgresql.data_dir = join(dir, 'data');
  cfg.postgresql.socket_dir = dir;
  if (pki !== null) {
    const leaf = pki.node(i);
    cfg.restapi = { ...cfg.restapi, certfile: leaf.cert, keyfile: leaf.key, cafile: pki.caFile, verify_client: 'required', allowlist_include_members: true, allowlist: ['127.0.0.1'] };
  }
  cfg.pgbouncer = {
    poolers: [{ name: 'demo-pgbouncer', host: '127.0.0.1', port: PGBOUNCER_PORT, user: POOLER_ADMIN.user, password_file: poolerPassFile() }],
    route_check: `127.0.0.1:${RW_PORT}`,
  };
  const path = join(base, `node${i}.yml`);
  writeFileSync(path, stringify(cfg), { mode: 0o600 });
  own(path);
  const port = (hp: string) => Number(hp.slice(hp.lastIndexOf(':') + 1));
  return { name: cfg.name as string, config: path, pgPort: port(cfg.postgresql.listen), apiPort: port(cfg.restapi.listen) };
}

/** The demo's nodes as a lab Cluster: its API over HTTPS with the admin certificate under --tls. */
function demoCluster(nodes: DemoNode[], pki: DemoPki | null, su: { username: string; password: string }): Cluster<DemoNode> {
  const client: ClientTls | undefined = pki === null ? undefined
    : { ca: readFileSync(pki.caFile), cert: readFileSync(pki.admin.cert), key: readFileSync(pki.admin.key), rejectUnauthorized: true };
  return {
    nodes,
    probe: (n, path) => apiRequest(`${pki === null ? 'http' : 'https'}://127.0.0.1:${n.apiPort}${path}`, { tls: client, timeoutMs: 1000 }).then((r) => r.status, () => 0),
    async rows<T>(n: DemoNode, sql: string, timeoutMs = 3000): Promise<T[]> {
      const c = new pg.Client({ host: '127.0.0.1', port: n.pgPort, user: su.username, password: su.password, database: 'postgres', connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
      c.on('error', () => undefined);
      try { await c.connect(); return (await c.query(sql)).rows as T[]; } finally { await c.end().catch(() => undefined); }
    },
  };
}

async function shutdown(code: number): Promise<never> {
  process.stdout.write('\nstopping the demo cluster...\n');
  const agents = children.filter((c) => c.spawnargs.some((a) => a.endsWith('pgha.js')));
  for (const a of agents) a.kill('SIGTERM');
  // Agents stop PostgreSQL and release the leader key; 30 s covers a fast shutdown of each.
  await Promise.all(agents.map((a) => new Promise((r) => { if (a.exitCode !== null) r(null); else { a.once('exit', r); setTimeout(r, 30_000); } })));
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const s of stops) await s().catch(() => undefined);
  process.stdout.write(`stopped. Data and logs stay in ${base} until the next demo run.\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true, mode: 0o755 });
  own(base);
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));

  const etcd = await startEtcd({ clientPort: ETCD_CLIENT, peerPort: ETCD_PEER, name: 'demo', dataDir: join(base, 'etcd'), logPath: join(base, 'etcd.log'), logLevel: 'warn' });
  stops.push(() => etcd.stop());

  const pki = tls ? preparePki() : null;
  const nodes = [1, 2, 3].map((i) => prepareNode(i, pki));
  for (const n of nodes) children.push(spawnAgent({ configPath: n.config, logPath: join(base, `${n.name}.log`), dir: base, user: owner }));

  children.push(startHaproxy({
    dir: base, readWritePort: RW_PORT, readOnlyPort: RO_PORT, logPath: join(base, 'haproxy.log'),
    members: nodes.map((n) => ({ name: n.name, pgHost: '127.0.0.1', pgPort: n.pgPort, apiHost: '127.0.0.1', apiPort: n.apiPort })),
    ...(pki === null ? {} : { apiTls: { caFile: pki.caFile, crtFile: pki.haproxyPem } }),
  }).child);

  process.stdout.write(`starting etcd (:${ETCD_CLIENT}), 3 agents${pki === null ? '' : ' (REST API over HTTPS)'}, HAProxy and PgBouncer (:${PGBOUNCER_PORT}); logs in ${base}\n`);
  const su = (parse(readFileSync(nodes[0]!.config, 'utf8')) as any).postgresql.authentication.superuser;
  // Bootstrap is initdb + start + clone x2: about 15 s here; 120 s allows a slow first run. Up
  // means one primary and every other member a running standby (not necessarily streaming yet).
  const up = await waitHealthy(demoCluster(nodes, pki, su), 120_000, { streaming: false, intervalMs: 500 }).then(() => true, () => false);
  if (!up) {
    process.stderr.write(`the cluster did not become healthy within 120 s; see the logs in ${base}\n`);
    await shutdown(1);
  }
  const pgpass = join(base, 'pgpass');
  // PgBouncer (transaction pooling) in front of HAProxy's read-write port: see docs/pgbouncer.md.
  const bouncer = await startPgbouncer({
    dir: join(base, 'pgbouncer'), port: PGBOUNCER_PORT, server: { host: '127.0.0.1', port: RW_PORT },
    admin: POOLER_ADMIN, users: { [su.username]: su.password }, poolSize: 20, owner,
  });
  children.push(bouncer.child);
  // One query through it, so a broken pooler shows now and not at the reader's first psql.
  const probe = new pg.Client({ host: '127.0.0.1', port: PGBOUNCER_PORT, user: su.username, password: su.password, database: 'postgres', connectionTimeoutMillis: 10_000 });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    await probe.query('select 1');
  } catch (err) {
    process.stderr.write(`PgBouncer on :${PGBOUNCER_PORT} does not answer queries: ${err instanceof Error ? err.message : String(err)}; see ${bouncer.logPath}\n`);
    await shutdown(1);
  } finally {
    await probe.end().catch(() => undefined);
  }
  writeFileSync(pgpass, `127.0.0.1:*:*:${su.username}:${su.password}\n`, { mode: 0o600 });
  const list = await promisify(execFile)(process.execPath, [join(REPO, 'bin/pghactl.js'), '-c', nodes[0]!.config, 'list']).then((r) => r.stdout, (e: Error) => `pghactl list failed: ${e.message}\n`);
  process.stdout.write(`
The demo cluster is up.

  read-write (HAProxy -> primary):  PGPASSFILE=${pgpass} psql -h 127.0.0.1 -p ${RW_PORT} -U ${su.username} postgres
  pooled     (PgBouncer -> HAProxy -> primary; a switchover is a short wait, not an error):
                                    PGPASSFILE=${pgpass} psql -h 127.0.0.1 -p ${PGBOUNCER_PORT} -U ${su.username} postgres
  read-only  (HAProxy -> replicas): PGPASSFILE=${pgpass} psql -h 127.0.0.1 -p ${RO_PORT} -U ${su.username} postgres
  no proxy (libpq multi-host):      PGPASSFILE=${pgpass} psql "host=127.0.0.1,127.0.0.1,127.0.0.1 port=${nodes.map((n) => n.pgPort).join(',')} user=${su.username} dbname=postgres target_session_attrs=read-write"
  REST API:                         ${nodes.map((n) => `curl -s ${curlTls(pki)}${pki === null ? 'http' : 'https'}://127.0.0.1:${n.apiPort}/status`).join('\n                                    ')}
  cluster state:                    npx pghactl -c ${nodes[0]!.config} list

${pki === null ? '' : `  TLS: the agents serve HTTPS and require a client certificate signed by ${pki.caFile}
       (${pki.dir}: admin.crt/admin.key for you, haproxy.pem for HAProxy's check-ssl). pghactl -c
       nodeN.yml uses that node's certificate (no ctl section: it falls back to restapi's).
`}
${list}
Try a failover: kill the primary's agent and PostgreSQL, and watch \`pghactl list\`.
Press Ctrl-C to stop everything.
`);
  if (smoke) await shutdown(0);
}

/** curl's options for the demo's HTTPS API: our CA, and the admin certificate it requires. */
function curlTls(pki: DemoPki | null): string {
  return pki === null ? '' : `--cacert ${pki.caFile} --cert ${pki.admin.cert} --key ${pki.admin.key} `;
}

main().catch(async (err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  await shutdown(1);
});
