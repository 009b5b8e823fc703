// Test only: lets the chaos lab jump one agent's wall clock (the fault clock-jump-primary). Loaded
// into the agent with NODE_OPTIONS=--import=<this file> when PGHA_TEST_CLOCK_FILE is set; on
// SIGUSR2 (and at start) it reads a number of milliseconds from that file and adds it to every
// wall-clock reading in the process: Date.now() and `new Date()`. That is all a real jump of
// CLOCK_REALTIME (settimeofday, a bad NTP step) changes in a Node process: timers,
// performance.now() and process.hrtime() run on CLOCK_MONOTONIC, which does not jump. Only the
// agent is shifted, not PostgreSQL: the checker judges split brain by the servers' clocks.
import { readFileSync } from 'node:fs';

const file = process.env.PGHA_TEST_CLOCK_FILE;
if (file) {
  const RealDate = Date;
  const realNow = Date.now.bind(Date);
  let offset = 0;
  const read = () => {
    try {
      offset = Number(readFileSync(file, 'utf8').trim()) || 0;
    } catch {
      offset = 0;
    }
    // Into the agent's log, so the lab can check the jump took effect.
    if (offset !== 0 || process.env.PGHA_REEXEC === undefined) process.stderr.write(`clock-shift: offset ${offset}\n`);
  };
  read();
  RealDate.now = () => realNow() + offset;
  // A Proxy, not a subclass: `x instanceof Date` stays true for dates Node made internally.
  globalThis.Date = new Proxy(RealDate, {
    construct(target, args, newTarget) {
      return Reflect.construct(target, args.length === 0 ? [realNow() + offset] : args, newTarget);
    },
  });
  process.on('SIGUSR2', read);
}
