// DecodeCache (src/dcs/codec.ts): an etcd value is validated once per key and mod_revision.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DecodeCache, memberInfoSchema, statusSchema } from '../../src/dcs/codec.ts';

/** A schema that counts how often it validates. */
function counting() {
  let runs = 0;
  const schema = z.object({ n: z.number() }).refine(() => { runs += 1; return true; });
  return { schema, runs: () => runs };
}

describe('DecodeCache', () => {
  it('validates a key once per mod_revision and again when the revision changes', () => {
    const c = new DecodeCache();
    const s = counting();
    const a = c.decode(s.schema, '/k', '5', '{"n":1}');
    const b = c.decode(s.schema, '/k', '5', '{"n":1}');
    expect(s.runs()).toBe(1);
    expect(b).toBe(a);
    expect(c.decode(s.schema, '/k', '6', '{"n":2}')).toEqual({ ok: true, value: { n: 2 } });
    expect(s.runs()).toBe(2);
  });

  it('keeps keys apart, and a schema apart', () => {
    const c = new DecodeCache();
    expect(c.decode(statusSchema, '/a', '5', '{"lsn":7}')).toEqual({ ok: true, value: { lsn: 7 } });
    expect(c.decode(statusSchema, '/b', '5', '{"lsn":8}')).toEqual({ ok: true, value: { lsn: 8 } });
    expect(c.decode(memberInfoSchema, '/a', '5', '{"lsn":7}').ok).toBe(false);
  });

  it('remembers a failure with its reason', () => {
    const c = new DecodeCache();
    const bad = c.decode(statusSchema, '/s', '3', '{"lsn":"x"}');
    expect(bad.ok).toBe(false);
    expect(c.decode(statusSchema, '/s', '3', '{"lsn":"x"}')).toEqual(bad);
    expect(c.decode(statusSchema, '/s', '4', 'not json')).toMatchObject({ ok: false, error: expect.stringMatching(/^not JSON/) });
  });

  it('hands out frozen values, nested ones included', () => {
    const c = new DecodeCache();
    const r = c.decode(statusSchema, '/s', '1', '{"lsn":1,"slots":{"a":2}}');
    if (!r.ok) throw new Error(r.error);
    expect(Object.isFrozen(r.value)).toBe(true);
    expect(() => { (r.value.slots as Record<string, number>)['a'] = 3; }).toThrow(TypeError);
  });

  it('forgets keys that a whole read no longer saw', () => {
    const c = new DecodeCache();
    c.decode(statusSchema, '/a', '1', '{"lsn":1}');
    c.decode(statusSchema, '/b', '1', '{"lsn":1}');
    c.sweep();
    expect(c.size).toBe(2);
    c.decode(statusSchema, '/a', '1', '{"lsn":1}');
    c.sweep();
    expect(c.size).toBe(1);
    const s = counting();
    c.decode(s.schema, '/b', '1', '{"n":1}');
    expect(s.runs()).toBe(1);
  });
});
