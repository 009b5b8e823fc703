// The body of POST /failsafe in both dialects. pgha's leader sends {leader, ttl} and, since the
// mixed-cluster work, Patroni's fields beside them; Patroni 3.0.2's leader (ha.py
// check_failsafe_topology) sends {name, conn_url, api_url, slots?} and counts a member as
// confirming only on status 200 with the body exactly `Accepted` (ha.py call_failsafe_member).
import { z } from 'zod';

const NAME = z.string().min(1).max(256).regex(/^[A-Za-z0-9_.-]+$/, 'a member name');

export const failsafeBodySchema = z.strictObject({
  /** pgha's caller: the leader's name. */
  leader: NAME.optional(),
  // The leader's ttl in seconds (the dynamic config's range): the promise lasts at least this.
  ttl: z.number().min(2).max(3600).optional(),
  /** Patroni's caller (and pgha's, for Patroni members): the leader's name and addresses. */
  name: NAME.optional(),
  conn_url: z.string().max(1024).optional(),
  api_url: z.string().max(1024).optional(),
  /** Patroni's leader's replication slots: not used by pgha (it reads slots from etcd). */
  slots: z.record(z.string(), z.unknown()).optional(),
}).refine((b) => b.leader !== undefined || b.name !== undefined, 'leader (or Patroni\'s name) is required')
  .refine((b) => b.leader === undefined || b.name === undefined || b.leader === b.name, 'leader and name differ');

export type FailsafeBody = z.infer<typeof failsafeBodySchema>;

/** Who calls, and whether it speaks Patroni's dialect (no `leader`: answer `Accepted` as text). */
export function failsafeCaller(b: FailsafeBody): { leader: string; patroni: boolean } {
  return { leader: (b.leader ?? b.name)!, patroni: b.leader === undefined };
}

/** The fields pgha's leader sends so that a Patroni member can confirm it too. */
export function patroniFailsafeFields(self: string, conn: string, apiUrl: string): { name: string; conn_url: string; api_url: string } {
  return { name: self, conn_url: `postgres://${conn}/postgres`, api_url: `${apiUrl}/patroni` };
}
