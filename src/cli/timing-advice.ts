// The line `pghactl list` prints about the timing in /config during and after a migration from
// Patroni (docs/migrating-from-patroni.md). While any member runs Patroni (its member value
// carries none of pgha's fields), /config's ttl/loop_wait/retry_timeout must stay Patroni's:
// Patroni validates them as whole seconds and runs its own split-brain margin on them. Once every
// member runs pgha, pgha's defaults (much shorter) are offered with the command that applies them.
import { dynamicConfigSchema, type DynamicConfig } from '../config/schema.ts';
import type { ClusterView } from '../ha/types.ts';

type Timing = Pick<DynamicConfig, 'ttl' | 'loop_wait' | 'retry_timeout'>;

/** pgha's default timing (the schema's defaults). */
export function pghaTiming(): Timing {
  const d = dynamicConfigSchema.parse({});
  return { ttl: d.ttl, loop_wait: d.loop_wait, retry_timeout: d.retry_timeout };
}

const show = (t: Timing) => `ttl ${t.ttl} / loop_wait ${t.loop_wait} / retry_timeout ${t.retry_timeout}`;

/** Lines of advice (each ending in a newline), or '' when there is nothing to say. */
export function timingAdvice(view: ClusterView): string {
  const cfg = view.config;
  const patroni = view.members.filter((m) => m.agent === 'patroni').map((m) => m.name);
  if (patroni.length > 0) {
    return ` Timing: ${show(cfg)} is Patroni's while Patroni members remain (${patroni.join(', ')}); keep it until the last one runs pgha.\n`;
  }
  const fast = pghaTiming();
  if (view.members.length === 0 || (cfg.ttl <= fast.ttl && cfg.loop_wait <= fast.loop_wait && cfg.retry_timeout <= fast.retry_timeout)) return '';
  return ` Timing: every member runs pgha; ${show(cfg)} is slower than pgha's defaults (${show(fast)}), which fail over in a few seconds.\n` +
    `   Apply them with: pghactl edit-config --set ttl=${fast.ttl} --set loop_wait=${fast.loop_wait} --set retry_timeout=${fast.retry_timeout}\n`;
}
