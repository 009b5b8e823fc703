// pghactl list's timing line during and after a migration from Patroni (src/cli/timing-advice.ts).
import { describe, expect, it } from 'vitest';
import { timingAdvice } from '../../src/cli/timing-advice.ts';
import { clusterView, dyn, member } from '../support/observations.ts';

const patroniTiming = dyn({ ttl: 10, loop_wait: 2, retry_timeout: 3 });

describe('timing advice', () => {
  it('says the timing is Patroni\'s while a Patroni member remains', () => {
    const v = clusterView({ config: patroniTiming, members: [member('n1'), member('n2', { agent: 'patroni', patroniRole: 'replica' })] });
    expect(timingAdvice(v)).toBe(' Timing: ttl 10 / loop_wait 2 / retry_timeout 3 is Patroni\'s while Patroni members remain (n2); keep it until the last one runs pgha.\n');
  });

  it('offers pgha\'s timing and the command once every member runs pgha', () => {
    const v = clusterView({ config: patroniTiming, members: [member('n1'), member('n2')] });
    expect(timingAdvice(v)).toContain('every member runs pgha');
    expect(timingAdvice(v)).toContain('pghactl edit-config --set ttl=2 --set loop_wait=0.5 --set retry_timeout=0.75');
  });

  it('says nothing at pgha\'s timing', () => {
    expect(timingAdvice(clusterView({ members: [member('n1')] }))).toBe('');
  });
});
