// `npm run soak [-- --minutes 10 --burners 2 --ttl S --loop-wait S --retry-timeout S --fence-margin S]`:
// the false-failover soak. Runs an idle 3-node cluster (etcd, three agents, no client load) for
// --minutes while --burners processes spin a CPU core each at normal priority (`node -e 'for(;;){}'`),
// and counts leader changes. Nothing fails on purpose, so every leader change is a false failover.
// Timing defaults to pgha's defaults (src/config/schema.ts); the flags try other settings.
// Counted three ways: the leader key's holder polled every 100 ms, the entries added to /history
// (one per promotion), and the agents' "fencing" log lines (a leader that stopped itself).
// Exit code 0 when there were no leader changes, 1 otherwise.
import { spawn, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { dynamicConfigSchema } from '../src/config/schema.ts';
import { createEtcdDcs } from '../src/dcs/etcd.ts';
import { TestCluster } from '../lab/loopback.ts';
import { sleep } from '../lab/util.ts';

const defaults = dynamicConfigSchema.parse({});
const a = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    burners: { type: 'string', default: '2' },
    ttl: { type: 'string', default: String(defaults.ttl) },
    'loop-wait': { type: 'string', default: String(defaults.loop_wait) },
    'retry-timeout': { type: 'string', default: String(defaults.retry_timeout) },
    'fence-margin': { type: 'string', default: String(defaults.fence_margin) },
  },
}).values;
const timing = { ttl: Number(a.ttl), loop_wait: Number(a['loop-wait']), retry_timeout: Number(a['retry-timeout']), fence_margin: Number(a['fence-margin']) };
dynamicConfigSchema.parse(timing); // refuse an unsafe combination before starting anything
const MINUTES = Number(a.minutes);
const BURNERS = Number(a.burners);

// Ports allocated by TestCluster (lab/ports.ts).
const cluster = new TestCluster({
  ttl: timing.ttl, loopWait: timing.loop_wait, retryTimeout: timing.retry_timeout, fenceMargin: timing.fence_margin,
});
const burners: ChildProcess[] = [];

async function main(): Promise<void> {
  await cluster.startEtcd();
  cluster.startAll();
  // Bootstrap plus two clones: seconds here; 90 s covers a busy machine.
  const first = await cluster.waitHealthy(90_000);
  const dcs = await createEtcdDcs({ hosts: [cluster.etcdEndpoint], namespace: '/pgha-test', scope: 'itest', ttl: timing.ttl, callTimeoutMs: 2000 });
  const historyBefore = (await dcs.readHistory()).length;
  process.stdout.write(`soak: ${MINUTES} min, ${BURNERS} CPU burners, ttl ${timing.ttl} / loop_wait ${timing.loop_wait} / retry_timeout ${timing.retry_timeout} / fence_margin ${timing.fence_margin}; leader ${first.name}\n`);
  for (let i = 0; i < BURNERS; i++) burners.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));

  let holder: string | null = first.name;
  const changes: Array<{ at: number; from: string | null; to: string | null }> = [];
  let unreadable = 0;
  const t0 = performance.now();
  const end = t0 + MINUTES * 60_000;
  let nextReport = t0 + 60_000;
  while (performance.now() < end) {
    try {
      const view = await dcs.readCluster(defaults);
      const now = view.leader?.name ?? null;
      if (now !== holder) {
        changes.push({ at: (performance.now() - t0) / 1000, from: holder, to: now });
        process.stdout.write(`  ${((performance.now() - t0) / 1000).toFixed(1)} s: leader key ${holder ?? '(none)'} -> ${now ?? '(none)'}\n`);
        holder = now;
      }
    } catch {
      unreadable += 1; // etcd itself starved past the 2 s read deadline: counted, not a leader change
    }
    if (performance.now() >= nextReport) {
      process.stdout.write(`  ${Math.round((performance.now() - t0) / 60_000)} min: ${changes.length} leader key changes so far\n`);
      nextReport += 60_000;
    }
    await sleep(100);
  }
  for (const b of burners) b.kill('SIGKILL');
  const history = await dcs.readHistory();
  const promotions = history.slice(historyBefore);
  const fences = cluster.nodes.map((n) => ({ name: n.name, fences: (cluster.logs(n).match(/"event":"demoted"/g) ?? []).length }));
  await dcs.close();
  const lost = changes.filter((c) => c.from !== null).length;
  process.stdout.write(`
soak result (${MINUTES} min, ${BURNERS} burners, ttl ${timing.ttl} / loop_wait ${timing.loop_wait} / retry_timeout ${timing.retry_timeout} / fence_margin ${timing.fence_margin}):
  leader changes: ${lost} (leader key lost by its holder), ${changes.length} key changes in all
  promotions recorded in /history: ${promotions.length}${promotions.map((p) => ` [${p.leader} tl ${p.timeline} ${p.time}]`).join('')}
  fencing log lines: ${fences.map((f) => `${f.name} ${f.fences}`).join(', ')}
  etcd reads that missed their 2 s deadline: ${unreadable}
`);
  if (lost > 0 || promotions.length > 0) process.exitCode = 1;
}

main()
  .catch((err: unknown) => { console.error(err); process.exitCode = 2; })
  .finally(async () => {
    for (const b of burners) b.kill('SIGKILL');
    await cluster.destroy();
  });
